"""`scalelab run --preset smoke` end to end: the summary's contract, the report, and resume-by-skip."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCALELAB = [sys.executable, "-m", "scalelab.cli"]
MODEL_KEYS = {"name", "params", "non_embedding_params", "tokens", "train_flops", "final_val_loss",
              "tokens_per_second", "evals"}


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
        # a trained model cannot beat the Bayes-optimal loss of the text it is scored on
        assert m["final_val_loss"] > floor
        assert m["train_flops"] >= 6 * m["non_embedding_params"] * m["tokens"]
        params.append(m["params"])
    assert params == sorted(params) and len(set(params)) == len(params)
    for f in ("report.md", "report.html", "training_curves.png"):
        assert (smoke_run / f).stat().st_size > 0
    assert "| d1 |" in (smoke_run / "report.md").read_text()


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


def test_runs_lists_registry(smoke_run):
    proc = subprocess.run([*SCALELAB, "runs", "--out", str(smoke_run), "--artifacts"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    assert "pretrain:d1" in proc.stdout and "finished" in proc.stdout and "tokenizer" in proc.stdout
