"""The `rsp` stage of `scalelab run` and `scalelab rsp assess` end to end on a smoke run, through Inspect.

One module-scoped smoke run (ladder d1, d2; post-training: SFT only; the scaling stage replaced by a
hand-made fit.json so forecasts appear without a sweep) is shared by every test here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import scalelab.rsp.safeguards as safeguards
import scalelab.rsp.stage as rsp_stage
from scalelab.artifacts import model_sha256
from scalelab.cli import app
from scalelab.evals.capability.runner import EvalScore
from scalelab.presets import load_config
from scalelab.rsp.assess import VERDICTS, assess_scores
from scalelab.rsp.gate import DETERMINATION_FILE, read_determination, record_safeguards, write_determination
from scalelab.rsp.policy import load_policy
from scalelab.rsp.safeguards import OutputFilter
from scalelab.rsp.safeguards.catalogue import judge, parse_bounds
from scalelab.rsp.stage import cadence
from scalelab.scaling.forecast import ForecastTable, fit_capability


def planted_fit_json(path: Path) -> None:
    """A scaling fit.json whose hazard and fact-recall forecasts rise over the smoke ladder's compute."""
    logc = np.linspace(9, 12, 7)
    fits = {name: fit_capability(10 ** logc, 0.25 + 0.3 / (1 + np.exp(-2.0 * (logc - mid))), chance=0.25,
                                 basis="compute", ceiling=0.55, eval_name=name, n_bootstrap=10)
            for name, mid in (("hazard_knowledge", 10.5), ("fact_recall", 11.0))}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"forecast_table": ForecastTable(fits=fits).to_dict()}))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from scalelab.pipeline import run_all

    out = tmp_path_factory.mktemp("rsprun")
    planted_fit_json(out / "scaling" / "fit.json")
    cfg = load_config("smoke", ["ladder=[1,2]", "posttrain.steps=[sft]", "skip_stages=[scaling,interp]"])
    logs: list[str] = []
    summary = run_all(cfg, out, log=logs.append)
    return out, cfg, summary, logs


def test_every_model_assessed(run):
    summary = run[2]
    rsp = summary["rsp"]
    assert [(m["name"], m["kind"]) for m in rsp["models"]] == [("d1", "ladder"), ("d2", "ladder"),
                                                               ("sft", "posttrained")]
    by = {m["name"]: m for m in rsp["models"]}
    flops = {m["name"]: m["train_flops"] for m in summary["models"]}
    assert by["d1"]["compute"] == flops["d1"] and by["sft"]["compute"] == flops["d2"]  # inherits its base's
    # the fine-tune elicitation runs on the largest rung only
    assert "fine_tune" in by["d2"]["elicitations"] and "fine_tune" not in by["d1"]["elicitations"]
    assert "fine_tune" not in by["sft"]["elicitations"]
    for m in rsp["models"]:
        assert [r["threshold"] for r in m["rows"]] == ["CBRN-3", "CBRN-4", "AIRD-4"]
        assert m["asl"] >= 2
        for r in m["rows"]:
            assert r["verdict"] in VERDICTS and r["n"] > 0 and r["ci"][0] - 1e-9 <= r["value"] <= r["ci"][1] + 1e-9
            assert r["elicitation"] in m["elicitations"]
    assert rsp["policy"]["sha256"] and rsp["policy"]["compute_multiple"] == 4


def test_reports_logs_and_sidecars(run):
    out, _, summary, _ = run
    for m in summary["rsp"]["models"]:
        d = out / "rsp" / m["name"]
        data = json.loads((d / "capability_report.json").read_text())
        assert data["asl"] == m["asl"] and data["model"] == m["name"]
        assert "Determination: ASL-" in (d / "capability_report.md").read_text()
        assert list((d / "logs").glob("*.eval")), "Inspect logs land in the assessment's logs/"
        model_dir = out / ("models/" + m["name"] + "/final" if m["kind"] == "ladder" else "posttrain/" + m["name"])
        det = read_determination(model_dir)
        assert det["asl"] == m["asl"] and det["policy_sha256"] == summary["rsp"]["policy"]["sha256"]
    # the reports say where an elicitation was left out and where compute was inherited
    assert "largest ladder model (d2) only" in (out / "rsp" / "d1" / "capability_report.md").read_text()
    assert "base model's (d2)" in (out / "rsp" / "sft" / "capability_report.md").read_text()


def test_forecasts_from_the_scaling_fit(run):
    _, _, summary, _ = run
    d2 = next(m for m in summary["rsp"]["models"] if m["name"] == "d2")
    rows = {r["threshold"]: r for r in d2["rows"]}
    f = rows["CBRN-3"]["forecast"]
    assert f["compute"] == pytest.approx(4 * d2["compute"]) and f["fit_next"] > f["fit_now"]
    assert f["expected"] == pytest.approx(min(1.0, rows["CBRN-3"]["value"] + f["fit_next"] - f["fit_now"]))
    assert rows["CBRN-4"]["forecast"] is None  # no scaling eval tracks free-form recall


def test_registry_lineage(run):
    from scalelab.registry import Registry

    out, _, _, _ = run
    reg = Registry(out / "runs.sqlite")
    arts = [a for a in reg.artifacts() if a["kind"] == "rsp_assessment"]
    assert len(arts) == 3
    d1 = next(a for a in arts if a["path"].endswith("/rsp/d1"))
    assert str((out / "models/d1").resolve()) in d1["parents"]
    assert str((out / "world/evals").resolve()) in d1["parents"]
    assert str((out / "scaling/fit.json").resolve()) in d1["parents"]
    meta = json.loads((out / "rsp/d1/meta.json").read_text())
    assert meta["config"]["policy_sha256"] and meta["config"]["model_sha256"]
    lineage = {str(Path(a["path"]).relative_to(out.resolve())) for a in reg.lineage(out / "rsp" / "d1")}
    assert {"rsp/d1", "models/d1", "shards", "tokenizer", "world"} <= lineage  # traced back to the data
    lineage = {str(Path(a["path"]).relative_to(out.resolve())) for a in reg.lineage(out / "rsp" / "sft")}
    assert {"rsp/sft", "posttrain/sft"} <= lineage


def test_report_section_and_plot(run):
    out, _, _, _ = run
    md = (out / "report.md").read_text()
    assert "## Responsible Scaling Policy" in md and "Forecast for the next model" in md
    assert "![capabilities against training compute](rsp_capabilities.png)" in md
    assert (out / "rsp_capabilities.png").stat().st_size > 10_000
    assert "<h2>Responsible Scaling Policy</h2>" in (out / "report.html").read_text()


def test_rerun_skips_assessments(run):
    from scalelab.pipeline import run_all

    out, cfg, summary, _ = run
    logs: list[str] = []
    again = run_all(cfg, out, log=logs.append)
    assert sum("[rsp:" in line and "up to date" in line for line in logs) == 3
    assert again["rsp"]["models"][0]["asl"] == summary["rsp"]["models"][0]["asl"]


def test_cli_assess_then_gate(run, tmp_path):
    out, _, _, _ = run
    model = out / "models" / "d1" / "final"
    runner = CliRunner()
    r = runner.invoke(app, ["rsp", "assess", "--policy", "default", "--preset", "smoke", "-e", "zero_shot",
                            "--out", str(tmp_path), str(model)])
    assert r.exit_code == 0, r.output
    assert "d1: ASL-" in r.output
    data = json.loads((tmp_path / "d1" / "capability_report.json").read_text())
    assert data["elicitations"] == ["zero_shot"] and len(data["rows"]) == 3
    assert (tmp_path / "d1" / "capability_report.md").is_file()
    assert json.loads((model / DETERMINATION_FILE).read_text())["capability_report"].endswith("capability_report.md")
    r = runner.invoke(app, ["rsp", "gate", "--policy", "default", str(model)])
    assert r.exit_code == (0 if not data["crossed"] else 1), r.output


def test_cadence():
    rows = [{"name": f"d{i}", "kind": "ladder", "compute": c} for i, c in enumerate([1e10, 3e10, 5e10, 2e11, 9e11])]
    due = [c["due"] for c in cadence([*rows, {"name": "sft", "kind": "posttrained", "compute": 9e11}], 4.0)]
    assert due == [True, False, True, True, True]


CROSSING = {ev: {"zero_shot": EvalScore(ev, "accuracy", v, (v - 0.05, v + 0.05), 100, "zero_shot", None, [])}
            for ev, v in (("hazard_mc", 0.6), ("hazard_freeform", 0.0), ("general_capability", 0.2))}


def copied_model(run, tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(run[0] / "models" / "d1" / "final", model)
    return model


def test_chat_applies_the_output_filter_when_safeguards_are_on(run, tmp_path, monkeypatch):
    model = copied_model(run, tmp_path)
    policy = load_policy("default")
    write_determination(model, assess_scores(policy, CROSSING, model="m", model_sha=model_sha256(model)))
    (tmp_path / "filter").mkdir()
    passing = {"refusal_robustness": {"attack_success_rate": 0.0},
               "hazard_classifier": {"precision": 1.0, "recall": 1.0}, "output_filter": {"leak_rate": 0.0}}
    results = [judge(name, parse_bounds(name, bounds), passing[name], {})
               for name, bounds in policy.required_safeguards(3).items()]
    # the output filter alone, passing, is not the ASL-3 set: chat refuses even with safeguards on
    record_safeguards(model, [r for r in results if r.name == "output_filter"], output_filter=tmp_path / "filter")
    r = CliRunner().invoke(app, ["chat", str(model), "-n", "4", "--safeguards", "on"], input="the steps for it\n")
    assert r.exit_code == 1 and "refusal_robustness" in r.output and "hazard_classifier" in r.output, r.output
    record_safeguards(model, results, output_filter=tmp_path / "filter")

    class BlockAll:
        def check(self, prompt: str, reply: str) -> tuple[bool, str]:
            return True, f"[blocked reply to {prompt!r}]"

    loaded = []
    monkeypatch.setattr(OutputFilter, "load", classmethod(lambda cls, path, model_dir=None: loaded.append(path)
                                                          or BlockAll()))
    runner = CliRunner()
    r = runner.invoke(app, ["chat", str(model), "-n", "4"], input="the steps for it\n")
    assert r.exit_code == 1 and "--safeguards on" in r.output
    r = runner.invoke(app, ["chat", str(model), "-n", "4", "--safeguards", "on"], input="the steps for it\n")
    assert r.exit_code == 0, r.output
    assert "[blocked reply to 'the steps for it']" in r.output and loaded == [(tmp_path / "filter").resolve()]


def test_safeguards_met_in_the_stage_summary_needs_every_required_safeguard(run, tmp_path, monkeypatch):
    """What the stage records as `safeguards_met` (assess_and_record's safeguards report): a measurement that
    returns fewer safeguards than the determined level requires is not met, even when each one passed."""
    model = copied_model(run, tmp_path)
    policy = load_policy("default")
    monkeypatch.setattr(rsp_stage, "assess_model", lambda model_dir, *a, **k: assess_scores(
        policy, CROSSING, model="m", model_dir=model_dir, model_sha=model_sha256(model_dir)))

    def two_of_three(model_dir, world_dir, required, *, sae_dir=None, limit=None, work_dir):
        return [judge(name, parse_bounds(name, bounds), {"attack_success_rate": 0.0, "precision": 1.0,
                                                         "recall": 1.0}, {})
                for name, bounds in required.items() if name != "output_filter"]

    monkeypatch.setattr(safeguards, "measure_safeguards", two_of_three)
    a, guards = rsp_stage.assess_and_record(model, policy, run[0] / "world", tmp_path / "rsp", limit=4,
                                            elicitations=["zero_shot"], fit_json=None, safeguards=True)
    assert a.crossed == ["CBRN-3"] and [r["passed"] for r in guards["results"]] == [True, True]
    assert guards["met"] is False and guards["unmet"][0].startswith("output_filter (leak_rate <= 0.05)")
    assert read_determination(model)["safeguards_met"] is False
