"""The `reasoning` stage on a one-rung smoke run: the summary's contract, its report section, resume-by-skip, and
the commands `scalelab reason`, `scalelab synth` and `scalelab scale data-constrained`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalelab.artifacts import read_meta
from scalelab.cli import app
from scalelab.pipeline import run_all
from scalelab.presets import load_config
from scalelab.reasoning.report import section_reasoning
from test_pipeline import unfilled_placeholders

ONE_RUNG = ["ladder=[1]", "reasoning.data_constrained.unique_tokens=3000", "reasoning.synthetic.unique_tokens=3000"]
STAGES = ("world", "tokenizer", "shards", "ladder", "reasoning")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("reasoning-run")
    logs: list[str] = []
    summary = run_all(load_config("smoke", ONE_RUNG), out, log=logs.append, only=STAGES)
    return out, summary


def test_summary_holds_every_key_the_issue_names(run):
    out, summary = run
    r = summary["reasoning"]
    dc = r["data_constrained"]
    assert dc["r_star"] > 0 and len(dc["r_star_ci"]) == 2 and dc["depth"] == 1
    assert set(dc["epochs"]) == {"1", "2", "4"}
    for e in dc["epochs"].values():
        assert e["loss"] > 0 and e["fresh_loss"] > 0 and -1 <= e["knowledge_gap"] <= 1
    syn = r["synthetic"]
    assert set(syn["arms"]) == {"repeat", "synthetic", "verified", "fresh"}
    for arm in syn["arms"].values():
        assert arm["loss"] > 0 and arm["knowledge_gap"] is not None and 0 < arm["distinct_ngrams"] <= 1
    for mode in ("replace", "accumulate"):
        gens = syn["recursion"][mode]
        assert [g["generation"] for g in gens] == [0, 1]
        assert all(g["loss"] > 0 and g["knowledge_gap"] is not None and 0 < g["distinct_ngrams"] <= 1 for g in gens)
    assert set(r["tasks"]) == {"arithmetic"}
    for steps in r["tasks"].values():
        assert set(steps) == {"sft", "star", "grpo", "sft-direct"}
        for step in steps.values():
            assert set(step["pass_at_k"]) == {"1", "4"} and set(step["majority_at_k"]) == {"1", "4"}
            assert 0 <= step["heldout_difficulty_pass_at_1"] <= 1
            assert step["self_verification_agreement"] is None or 0 <= step["self_verification_agreement"] <= 1
            assert step["pass_at_k"]["1"] <= step["pass_at_k"]["4"]
    assert (out / r["data_constrained"]["plots"][0]).is_file() and (out / r["plots"][0]).is_file()


def test_report_section_renders_everything(run):
    out, summary = run
    md = section_reasoning(summary, out)
    assert "R\\*" in md and "### Synthetic data" in md and "| arithmetic | sft |" in md
    assert not unfilled_placeholders(md)


def test_rerun_skips_every_step(run):
    out, first = run
    assert first["reasoning"]["timing"]["reused_steps"] == 0 and first["reasoning"]["timing"]["steps"] > 0
    logs: list[str] = []
    again = run_all(load_config("smoke", ONE_RUNG), out, log=logs.append, only=STAGES)
    ran = [line for line in logs if "running" in line]
    assert not ran, ran
    # the resumed stage reports the time its reused steps recorded, not the seconds it took to skip them
    t = again["reasoning"]["timing"]
    assert t["reused_steps"] == t["steps"] == first["reasoning"]["timing"]["steps"]
    recorded = sum(read_meta(m.parent)["result"]["stage_seconds"] for m in (out / "reasoning").rglob("meta.json"))
    assert again["reasoning"]["seconds"] >= t["reused_step_seconds"] >= round(recorded, 1) - 0.1
    assert f"The stage took {t['seconds']} s: {t['steps']} of its {t['steps']} steps" in section_reasoning(again, out)


def test_commands(run, tmp_path):
    out, _ = run
    cli = CliRunner()
    sft = out / "reasoning" / "arithmetic" / "sft"
    res = cli.invoke(app, ["reason", "eval", "--model", str(sft), "--task", "arithmetic", "--k", "1,2", "--preset",
                           "smoke", "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output[-2000:]
    assert set(json.loads(res.stdout[res.stdout.index("{"):])["pass_at_k"]) == {"1", "2"}
    res = cli.invoke(app, ["reason", "grpo", "--model", str(sft), "--task", "arithmetic", "--seeds", "0,1", "--preset",
                           "smoke", "--out", str(tmp_path / "grpo"), "--set", "reasoning.grpo.steps=1"])
    assert res.exit_code == 0, res.output[-2000:]
    assert '"grpo_over_seeds"' in res.stdout and (tmp_path / "grpo" / "reasoning" / "arithmetic" / "grpo-s1").is_dir()
    res = cli.invoke(app, ["scale", "data-constrained", "--preset", "smoke", "--out", str(out),
                           *[x for o in ONE_RUNG for x in ("--set", o)]])
    assert res.exit_code == 0, res.output[-2000:]
    assert "running" not in res.stdout and '"r_star"' in res.stdout  # the stage's runs, reused
    res = cli.invoke(app, ["synth", "--model", str(out / "models" / "d1" / "final"), "--world",
                           str(tmp_path / "nowhere"), "--preset", "smoke", "--out", str(tmp_path / "synth")])
    assert res.exit_code == 2 and "not a world directory" in res.output
    res = cli.invoke(app, ["reason", "sft", "--model", str(sft), "--task", "sudoku", "--preset", "smoke", "--out",
                           str(tmp_path / "bad")])
    assert res.exit_code == 2 and "unknown reasoning task" in res.output
