"""A smoke `scalelab run` with the posttrain stage end to end, and `scalelab posttrain` on one step alone."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.posttrain.report import CHAT_COLUMNS
from scalelab.posttrain.steps import STEPS
from scalelab.presets import load_config

STEP_ROWS = ("base", *STEPS)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from scalelab.pipeline import STAGES, run_all

    out = tmp_path_factory.mktemp("ptrun")
    cfg = load_config("smoke", ["ladder=[1]"])
    cfg.skip_stages = [s.name for s in STAGES if s.optional and s.name != "posttrain"]
    logs: list[str] = []
    summary = run_all(cfg, out, log=logs.append)
    return out, cfg, summary, logs


def test_step_table_in_summary_and_report(run):
    out, _, summary, _ = run
    pt = summary["posttrain"]
    assert pt["model"] == "d1" and pt["feedback"] == "oracle"
    assert tuple(pt["steps"]) == STEP_ROWS
    for name in STEP_ROWS:
        row = pt["steps"][name]
        for metric in (*CHAT_COLUMNS, "fact_recall", "arithmetic"):
            assert 0.0 <= row[metric] <= 1.0, (name, metric)
        assert set(CHAT_COLUMNS) <= set(row["system"])
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["posttrain"]["steps"] == json.loads(json.dumps(pt["steps"]))
    report = (out / "report.md").read_text()
    assert "## Post-training" in report and "| character |" in report and "With the system prompt" in report
    for name in STEPS:  # every step wrote a loadable HF checkpoint and its result
        assert (out / "posttrain" / name / "config.json").is_file()
        assert (out / "posttrain" / name / "result.json").is_file()
    rl = pt["details"]["rl_cai"]
    assert rl["feedback"] == "oracle" and rl["label_accuracy_vs_oracle"] in (None, 1.0)
    assert "heldout_accuracy" in rl.get("reward_model", {"heldout_accuracy": None})


def test_rerun_skips_finished_steps(run):
    from scalelab.posttrain.stage import run_posttrain
    from scalelab.stage import Context

    out, cfg, summary, _ = run
    logs: list[str] = []
    ctx = Context.standalone(cfg, out, logs.append)
    again = run_posttrain(ctx, summary)
    assert sum("up to date, skipped" in line for line in logs) == len(STEP_ROWS)
    assert again["steps"] == summary["posttrain"]["steps"]


def test_cli_runs_one_step_alone_and_rejects_bad_input(run, tmp_path):
    out, _, _, _ = run
    runner = CliRunner()
    res = runner.invoke(app, ["posttrain", "--model", str(out / "posttrain" / "sl_cai"), "--world", str(out / "world"),
                              "--step", "rl_cai", "--preset", "smoke", "--out", str(tmp_path / "pt")])
    assert res.exit_code == 0, res.output
    table = json.loads((tmp_path / "pt" / "posttrain.json").read_text())["steps"]
    assert list(table) == ["base", "rl_cai"]
    bad = runner.invoke(app, ["posttrain", "--model", str(out / "posttrain" / "sl_cai"), "--world", str(out / "world"),
                              "--step", "ppo", "--preset", "smoke", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "posttrain.steps" in bad.output
    nofb = runner.invoke(app, ["posttrain", "--model", str(out / "posttrain" / "sl_cai"), "--world", str(out / "world"),
                               "--feedback", f"hf:{tmp_path / 'missing'}", "--preset", "smoke",
                               "--out", str(tmp_path / "nofb")])
    assert nofb.exit_code == 2 and "not a HF checkpoint folder" in nofb.output
    odd = runner.invoke(app, ["posttrain", "--model", str(out / "posttrain" / "sl_cai"), "--world", str(out / "world"),
                              "--step", "rl_cai", "--preset", "smoke", "--set", "posttrain.rl_cai_samples=3",
                              "--out", str(tmp_path / "odd")])
    assert odd.exit_code == 2 and "posttrain.rl_cai_samples=3" in odd.output
    assert not (tmp_path / "odd" / "posttrain" / "base").exists()
    assert not (tmp_path / "nofb" / "posttrain" / "base").exists()  # refused before any step ran
