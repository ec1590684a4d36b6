"""Successful runs of `scalelab reason sft`, `scalelab reason star` and `scalelab synth` on a random depth-1 model
and the smoke world, at budgets that prove each command writes its artifacts and prints its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import random_smoke_model
from scalelab.artifacts import read_meta
from scalelab.cli import app

TINY = ["reasoning.sft.problems=16", "reasoning.sft.batch_size=8", "reasoning.star.problems=4",
        "reasoning.star.samples=2", "reasoning.eval.problems=2", "reasoning.eval.ks=[1,2]",
        "reasoning.eval.verify_problems=2", "reasoning.max_new_tokens=8", "reasoning.max_len=64"]
SYNTH = ["reasoning.synthetic.unique_tokens=1500", "reasoning.synthetic.synthetic_tokens=600",
         "reasoning.synthetic.train_epochs=1", "reasoning.synthetic.max_new_tokens=16",
         "reasoning.synthetic.sample_batch=16", "reasoning.synthetic.eval_items=4", "reasoning.synthetic.generations=1",
         "reasoning.data_constrained.epochs=[1]"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    final, _ = random_smoke_model(tmp_path_factory.mktemp("reason-commands"))
    return final


def _sets(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


def _printed(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


def _reason(step: str, model: Path, world: Path, out: Path) -> tuple[dict, Path]:
    res = CliRunner().invoke(app, ["reason", step, "--model", str(model), "--task", "arithmetic", "--world", str(world),
                                   "--preset", "smoke", "--out", str(out), *_sets(TINY)])
    assert res.exit_code == 0, res.output[-2000:]
    return _printed(res.stdout), out / "reasoning" / "arithmetic" / step


def test_reason_sft_then_star(model_dir, tmp_path):
    world = model_dir.parents[2] / "world"
    brief, sft = _reason("sft", model_dir, world, tmp_path / "sft")
    meta = read_meta(sft)
    assert meta["kind"] == "reasoning_model" and (sft / "model.safetensors").is_file()
    trained = json.loads((sft / "result.json").read_text())
    assert trained["problems"] == 16 and trained["examples"] >= 16 and trained["flops"] > 0
    ev = json.loads((tmp_path / "sft" / "reasoning" / "arithmetic" / "evals" / "sft" / "results.json").read_text())
    assert set(ev["pass_at_k"]) == set(brief["pass_at_k"]) == {"1", "2"} and brief["pass_at_k"] == ev["pass_at_k"]
    assert 0 <= ev["pass_at_k"]["1"] <= ev["pass_at_k"]["2"] <= 1 and "self_verification" in brief
    # the sampling precision was resolved (auto: measured or cached on this host) and recorded
    assert ev["precision"]["dtype"] in ("fp32", "bf16") and ev["precision"]["reason"] in ("measured", "cached")

    brief, star = _reason("star", sft, world, tmp_path / "star")
    assert read_meta(star)["kind"] == "reasoning_model" and (star / "model.safetensors").is_file()
    assert read_meta(star)["parents"][0] == str(sft.resolve())  # STaR started from the SFT model it was given
    trained = json.loads((star / "result.json").read_text())
    (it,) = trained["iterations"]
    assert it["problems"] == 4 and 0 <= it["solve_rate"] <= 1 and trained["kept"] == it["kept"] + it["rationalized"]
    assert trained["sampled_tokens"] > 0 and set(brief["pass_at_k"]) == {"1", "2"}


def test_synth_writes_every_arm_and_generation(model_dir, tmp_path):
    out = tmp_path / "synth"
    res = CliRunner().invoke(app, ["synth", "--model", str(model_dir), "--world", str(model_dir.parents[2] / "world"),
                                   "--preset", "smoke", "--out", str(out), *_sets(SYNTH)])
    assert res.exit_code == 0, res.output[-2000:]
    printed = _printed(res.stdout)
    result = json.loads((out / "synthetic" / "result.json").read_text())
    assert printed["arms"] == result["arms"] and set(result["arms"]) == {"repeat", "synthetic", "verified", "fresh"}
    for name, arm in result["arms"].items():
        assert arm["loss"] > 0 and (out / "synthetic" / "runs" / name / "final").is_dir()
    assert [g["generation"] for g in result["recursion"]["replace"]] == [0, 1]
    verified = result["arms"]["verified"]
    docs = [json.loads(x) for x in (out / "synthetic" / "written" / "writer-verified" / "docs.jsonl").read_text()
            .splitlines()]
    kept = [d for d in docs if d["kept"]]
    assert any(d["false"] for d in docs) and verified["sampled_false_claim_rate"] > 0  # the writer did err (seeded)
    assert kept and all(d["false"] == 0 for d in kept)  # the filter keeps only what passes the checker
    assert verified["kept_false_claim_rate"] in (0.0, None)
    assert verified["kept_no_claim_fraction"] == sum(d["checked"] == 0 for d in kept) / len(kept)
    gap = result["gap"]
    assert gap["closable"] == (gap["repeat_minus_fresh"] > gap["noise"])
    assert (verified["gap_closed"] is None) == (not gap["closable"])
