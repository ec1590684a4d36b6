"""`scalelab run --preset smoke` end to end: the summary's contract, the report, and resume-by-skip."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab.pipeline import STAGES, section_overview
from scalelab.report.targets import NOT_MEASURED, section_targets
from scalelab.rsp.gate import DETERMINATION_FILE

SCALELAB = [sys.executable, "-m", "scalelab"]
MODEL_KEYS = {"name", "params", "non_embedding_params", "tokens", "train_flops", "final_val_loss",
              "tokens_per_second", "evals"}


# A Python format field left in the text ({name}, {s['key']}, {x:.3f}, {0}, {}); a set of numbers such as
# {0.001, 0.01} is prose and does not match.
FORMAT_FIELD = re.compile(r"\{(?:[A-Za-z_]\w*(?:\.\w+|\[[^\]{}]*\])*|\d*)(?:![rsa])?(?::[^{}]*)?\}")
NONE = re.compile(r"\bNone\b")
NOT_A_NUMBER = re.compile(r"(?i)(?<![\w.])[-+]?(?:nan|inf)(?![\w.])")


def unfilled_placeholders(md: str) -> list[str]:
    """Where rendered Markdown shows an unfilled format field, a None, or a nan/inf in a table cell."""
    found = []
    for i, line in enumerate(md.splitlines(), 1):
        found += [f"line {i}: format field {m.group(0)}" for m in FORMAT_FIELD.finditer(line)]
        found += [f"line {i}: None in {line[:120]!r}" for _ in NONE.finditer(line)]
        if line.startswith("|"):
            found += [f"line {i}: cell {cell.strip()!r}" for cell in line.strip().strip("|").split("|")
                      if NOT_A_NUMBER.search(cell)]
    return found


def test_placeholder_check_finds_what_it_looks_for():
    assert unfilled_placeholders("N counts **{s['param_kind']}** parameters.")
    assert unfilled_placeholders("E = {fit.E:.4f}") and unfilled_placeholders("{0} and {}")
    assert unfilled_placeholders("Wall clock: None s.")
    assert unfilled_placeholders("| d1 | nan |") and unfilled_placeholders("| d1 | 0.3 [NaN, 0.4] |")
    assert not unfilled_placeholders("d ∈ {0.001, 0.003, 0.01}; a nan outside a table; | nanometre | 0.5 |")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke")
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([*SCALELAB, "run", "--preset", "smoke", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_summary_contract(smoke_run):
    s = json.loads((smoke_run / "summary.json").read_text())
    assert s["preset"] == "smoke"
    floor = s["world"]["entropy_floor_nats_per_token"]
    assert 0 < floor < 10
    assert len(s["models"]) >= 3
    params = []
    for m in s["models"]:
        assert m.keys() >= MODEL_KEYS
        for k in ("fact_recall", "arithmetic", "hazard_knowledge"):
            assert 0.0 <= m["evals"][k] <= 1.0
        # controls beside the scores: the subject-swapped control, the knowledge gap, no-knowledge baselines
        e = m["evals"]
        assert 0.0 <= e["fact_recall_control"] <= 1.0
        assert e["knowledge_gap"] == pytest.approx(e["details"]["fact_recall"]["accuracy_on_controlled"]
                                                   - e["fact_recall_control"])
        assert set(e["baselines"]) == {"fact_recall", "hazard_knowledge"}
        assert all(0.0 < b <= 1.0 for b in e["baselines"].values())
        # a trained model cannot beat the Bayes-optimal loss of the text it is scored on
        assert m["final_val_loss"] > floor
        assert m["train_flops"] >= 6 * m["non_embedding_params"] * m["tokens"]
        params.append(m["params"])
    assert params == sorted(params) and len(set(params)) == len(params)
    for f in ("report.md", "report.html", "training_curves.png"):
        assert (smoke_run / f).stat().st_size > 0
    assert "| d1 |" in (smoke_run / "report.md").read_text()


def test_no_report_section_leaves_a_placeholder(smoke_run):
    """Every stage's report section, rendered from the smoke run's summary, and the report on disk."""
    summary = json.loads((smoke_run / "summary.json").read_text())
    sections = {"overview": section_overview(summary, smoke_run),
                # what the report says while the run is still going (written after each stage)
                "overview, mid-run": section_overview({k: v for k, v in summary.items() if k != "wall_seconds"},
                                                      smoke_run),
                **{s.name: s.report(summary, smoke_run) for s in STAGES if s.report is not None},
                "targets": section_targets(summary, smoke_run)}
    assert len(sections) >= 7 and all(text.strip() for text in sections.values()), \
        [name for name, text in sections.items() if not text.strip()]  # every section was rendered and checked
    found = {name: unfilled_placeholders(text) for name, text in sections.items()}
    assert not any(found.values()), {name: f for name, f in found.items() if f}
    assert not unfilled_placeholders((smoke_run / "report.md").read_text())


def test_report_command_rerenders_the_ladder_against_its_targets(smoke_run):
    """The run keeps the targets' rows in summary.json, and `scalelab report` re-renders report.md from the summary
    alone with those rows in it (nothing retrained: the summary's figures come back unchanged)."""
    before = json.loads((smoke_run / "summary.json").read_text())
    rows = {r["key"]: r for r in before["instrument_targets"]}
    assert list(rows) == ["knowledge_gap", "hazard_knowledge", "arithmetic_per_digit", "arithmetic_exact_jump",
                          "loss_bound", "rsp_crossing", "rsp_forecast", "wall_seconds"]
    # every stage ran, so each target was judged on its figures; the wall time is this run's own
    assert rows["loss_bound"]["status"] != NOT_MEASURED and rows["rsp_crossing"]["status"] != NOT_MEASURED
    assert rows["wall_seconds"]["figure"].startswith(f"{before['wall_seconds']:.1f} s")
    assert rows["wall_seconds"]["met"] is (before["wall_seconds"] <= 600)
    (smoke_run / "report.md").unlink()
    proc = subprocess.run([*SCALELAB, "report", "--out", str(smoke_run)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (smoke_run / "report.md").read_text()
    assert md.index("## Knowledge against its controls") < md.index("## The ladder against the instrument's targets")
    for r in rows.values():
        assert f"| {r['target']} | {r['figure']} | {r['status']} | {r['limit'] or '–'} |" in md
    assert json.loads((smoke_run / "summary.json").read_text()) == before
    missing = subprocess.run([*SCALELAB, "report", "--out", str(smoke_run / "nothing")], capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 2 and "no summary.json" in missing.stderr


def test_checkpoints_are_hf_folders(smoke_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = smoke_run / "models" / "d1" / "final"
    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    assert model.config.vocab_size >= len(tok)  # the embedding covers every token
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith("<|user|>")


def test_rerun_skips_every_stage(smoke_run):
    proc = subprocess.run([*SCALELAB, "run", "--preset", "smoke", "--out", str(smoke_run)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "running" not in proc.stdout
    assert proc.stdout.count("skipped") >= 3 + 2 * 3
    assert f"browse it: scalelab serve --out {smoke_run}" in proc.stdout  # the last line names the web app


def test_runs_lists_registry(smoke_run):
    proc = subprocess.run([*SCALELAB, "runs", "--out", str(smoke_run), "--artifacts", "--limit", "500"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "pretrain:d1" in proc.stdout and "finished" in proc.stdout and "tokenizer" in proc.stdout


def test_generate_and_chat_cli(smoke_run, tmp_path):
    final = smoke_run / "models" / "d2" / "final"
    gen = subprocess.run([*SCALELAB, "generate", str(final), "The ", "12+3=", "-n", "8", "--temperature", "0"],
                         capture_output=True, text=True, timeout=120)
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert gen.stdout.count("\n") >= 2 and "12+3=" in gen.stdout
    assert "precision: " in gen.stderr  # auto resolved on this host, and said
    bf16 = subprocess.run([*SCALELAB, "generate", str(final), "12+3=", "-n", "4", "--dtype", "bf16"],
                          capture_output=True, text=True, timeout=120)
    assert bf16.returncode == 0 and "precision: bf16 (forced)" in bf16.stderr, bf16.stderr[-2000:]
    bad = subprocess.run([*SCALELAB, "generate", str(final), "12+3=", "--dtype", "half"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "'half'" in bad.stdout + bad.stderr
    # The rsp stage assessed this model; chat serves it only if it crossed no threshold (the gate's own tests
    # cover refusal and --safeguards on). A copy without the determination is a model never assessed.
    det = json.loads((final / DETERMINATION_FILE).read_text())
    unassessed = tmp_path / "d2"
    shutil.copytree(final, unassessed, ignore=shutil.ignore_patterns(DETERMINATION_FILE))
    for model in (final, unassessed):
        chat = subprocess.run([*SCALELAB, "chat", str(model), "--system", "Be brief.", "-n", "8"],
                              input="Who is Ada?\nAnd then?\n\n", capture_output=True, text=True, timeout=120)
        if model == final and det["crossed"]:
            assert chat.returncode != 0 and "--safeguards on" in chat.stderr, chat.stderr[-2000:]
            continue
        assert chat.returncode == 0, chat.stderr[-2000:]
        assert chat.stdout.count("assistant>") == 2


def test_real_text_corpus(tmp_path):
    """The pipeline runs on local text files: no world, so no floor and no world evals."""
    corpus = tmp_path / "texts"
    corpus.mkdir()
    lines = [f"The {c} river flows past the {t} mill, and the miller counts {n} sacks of grain."
             for c in ("red", "cold", "slow", "wide") for t in ("old", "new", "stone") for n in range(20)]
    (corpus / "a.txt").write_text("\n\n".join(lines[:120]), encoding="utf-8")
    (corpus / "b.jsonl").write_text("\n".join(json.dumps({"text": s}) for s in lines[120:]), encoding="utf-8")
    out = tmp_path / "run"
    proc = subprocess.run([*SCALELAB, "run", "--preset", "smoke", "--out", str(out), "--set", f"corpus={corpus}",
                           "--set", "ladder=[1,2]", "--set", "tokenizer.vocab_size=300", "--set", "train.tokens=4096"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["world"] is None and len(s["models"]) == 2
    assert all(m["final_val_loss"] > 0 and "evals" not in m for m in s["models"])
    assert not unfilled_placeholders((out / "report.md").read_text())


def test_bad_corpus_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 au lait\n")
    proc = subprocess.run([*SCALELAB, "run", "--preset", "smoke", "--out", str(tmp_path / "r"),
                           "--set", f"corpus={bad}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "bad.txt" in proc.stderr and "UTF-8" in proc.stderr


def test_cli_errors_user_errors_in_one_line_bugs_with_their_traceback(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from scalelab.cli import app

    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  lr: [0.01\n")
    res = CliRunner().invoke(app, ["config", "--config", str(broken)])
    assert res.exit_code == 2 and "broken.yaml line" in res.output and "Traceback" not in res.output

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a defect, not bad input")

    monkeypatch.setattr("scalelab.presets.load_config", bug)
    res = CliRunner().invoke(app, ["config", "--preset", "smoke"])
    assert res.exit_code == 1 and isinstance(res.exception, ZeroDivisionError)  # not dressed up as a user error


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    from scalelab.layout import RunLayout
    from scalelab.pipeline import RunLock

    out = tmp_path / "run"
    with RunLock(RunLayout(out)):
        proc = subprocess.run([*SCALELAB, "run", "--preset", "smoke", "--out", str(out)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "in use by a running `scalelab run`" in proc.stderr
    assert not (out / "world").exists()  # refused before writing anything
    with RunLock(RunLayout(out)):  # released when the holder leaves
        pass
