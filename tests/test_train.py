"""Pretraining: schedule and budget rules, a full run, exact resume after kill -9 and SIGTERM,
NaN stopping, and corrupt checkpoints refused by name."""

from __future__ import annotations

import itertools
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import make_shards
from scalelab.config import ConfigError
from scalelab.model.config import ModelConfig
from scalelab.model.hf import load_model
from scalelab.model.llama import Llama
from scalelab.presets import load_config
from scalelab.train.checkpoint import CheckpointError, latest_checkpoint
from scalelab.train.config import TrainConfig
from scalelab.train.loop import NonFiniteLossError, pretrain, token_budget
from scalelab.train.metrics import read_metrics
from scalelab.train.schedule import lr_multiplier, peak_lr

VOCAB = 128


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shards(tmp_path_factory.mktemp("train"), 30_000, VOCAB, seed=0)


def _configs(**train: object) -> tuple[ModelConfig, TrainConfig]:
    cfg = load_config("smoke", [f"train.{k}={v}" for k, v in train.items()])
    cfg.model.depth, cfg.model.vocab_size = 1, VOCAB
    return cfg.model, cfg.train


def test_schedules_warm_up_then_decay_to_the_floor() -> None:
    cfg = TrainConfig(warmup_frac=0.1, min_lr_frac=0.1, schedule="cosine")
    lrs = [lr_multiplier(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert lrs[-1] == pytest.approx(0.1)
    wsd = TrainConfig(warmup_frac=0.1, min_lr_frac=0.0, schedule="wsd", decay_frac=0.2)
    lrs = [lr_multiplier(s, 100, wsd) for s in range(100)]
    assert lrs[10:80] == [1.0] * 70 and lrs[-1] == pytest.approx(0.0) and 0 < lrs[90] < 1
    with pytest.raises(ConfigError, match="schedule"):
        lr_multiplier(0, 10, TrainConfig(schedule="linear"))


def test_lr_scales_with_width() -> None:
    cfg = TrainConfig(lr=1e-3, lr_ref_width=128)
    assert peak_lr(cfg, 512) == pytest.approx(5e-4)  # sqrt_width: sqrt(128/512) = 1/2
    assert peak_lr(TrainConfig(lr=1e-3, lr_ref_width=128, lr_scaling="width"), 512) == pytest.approx(2.5e-4)
    assert peak_lr(TrainConfig(lr=1e-3, lr_scaling="none"), 512) == 1e-3
    with pytest.raises(ConfigError, match="lr_scaling"):
        peak_lr(TrainConfig(lr_scaling="cubic"), 64)


def test_token_budget_rules() -> None:
    model = ModelConfig(depth=2, vocab_size=256)
    from scalelab.model.flops import count_params

    n = count_params(model)[1]
    assert token_budget(model, TrainConfig(tokens=1000)) == 1000
    assert token_budget(model, TrainConfig(tokens=0, tokens_per_param=4)) == 4 * n
    assert token_budget(model, TrainConfig(tokens=0, tokens_per_param=4, max_tokens=500)) == 500


def test_pretrain_learns_and_writes_a_hf_folder(shards: Path, tmp_path: Path) -> None:
    model_cfg, train_cfg = _configs(tokens=40_000, eval_every=20)
    result = pretrain(model_cfg, train_cfg, shards, tmp_path / "run", name="d1")
    assert result["steps"] == math.ceil(40_000 / (8 * 64)) and result["tokens"] == result["steps"] * 512
    assert result["name"] == "d1" and result["params"] > result["non_embedding_params"] > 0
    assert result["final_val_loss"] < 0.6 * math.log(VOCAB)  # the data is learnable
    rows = read_metrics(tmp_path / "run")
    assert [r["val_loss"] for r in rows if "val_loss" in r][-1] == result["final_val_loss"]
    assert any((tmp_path / "run" / "tb").iterdir())
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    ours, _ = load_model(tmp_path / "run" / "final")
    x = torch.randint(0, VOCAB, (1, 20))
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, ours(x), atol=1e-5, rtol=0)
    # a finished run resumes to its end without training again
    again = pretrain(model_cfg, train_cfg, shards, tmp_path / "run", name="d1")
    assert again["final_val_loss"] == result["final_val_loss"]
    assert again["tokens_per_second"] == result["tokens_per_second"] and again["steps"] == result["steps"]


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    class Exploding(Llama):
        def forward(self, idx, targets=None, **kw):  # type: ignore[no-untyped-def]
            out = super().forward(idx, targets, **kw)
            if targets is not None and self.training:
                calls["n"] += 1
                if calls["n"] >= 26:
                    return out * float("nan")
            return out

    monkeypatch.setattr("scalelab.train.loop.Llama", Exploding)
    model_cfg, train_cfg = _configs(tokens=40_000, ckpt_every=10)
    with pytest.raises(NonFiniteLossError, match=r"step 26.*step_0000020"):
        pretrain(model_cfg, train_cfg, shards, tmp_path / "run")
    kept = latest_checkpoint(tmp_path / "run" / "ckpt")
    assert kept is not None and kept.name == "step_0000020"
    assert json.loads((kept / "state.json").read_text())["step"] == 20
    assert all(math.isfinite(r.get("loss", 0.0)) for r in read_metrics(tmp_path / "run"))


def test_truncated_checkpoint_is_an_error_naming_the_file(shards: Path, tmp_path: Path) -> None:
    model_cfg, train_cfg = _configs(tokens=8 * 512, ckpt_every=4)
    pretrain(model_cfg, train_cfg, shards, tmp_path / "run")
    weights = latest_checkpoint(tmp_path / "run" / "ckpt") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"step_0000008/model\.safetensors.*truncated"):
        pretrain(model_cfg, train_cfg, shards, tmp_path / "run")
    (tmp_path / "run" / "ckpt" / "LATEST").write_text("step_0000999\n")
    with pytest.raises(CheckpointError, match="step_0000999"):
        pretrain(model_cfg, train_cfg, shards, tmp_path / "run")


# --- subprocess runs: kill -9 / SIGTERM and resume ------------------------------------------------

STEPS = 300


def _cli(shards: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "scalelab", "pretrain", "--shards", str(shards), "--out", str(out),
            "--preset", "smoke", "--depth", "1", "--set", f"train.tokens={STEPS * 512}",
            "--set", "train.log_every=1", "--set", "train.eval_every=50", *extra]


def _losses(out: Path) -> list[tuple[int, str, float]]:
    return [(r["step"], k, r[k]) for r in read_metrics(out) for k in ("loss", "val_loss") if k in r]


def _kill_after_first_checkpoint(cmd: list[str], out: Path) -> int:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "ckpt" / "LATEST").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    return proc.returncode


@pytest.fixture(scope="module")
def reference(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, str, float]]:
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(_cli(shards, out, "--set", "train.ckpt_every=40"), check=True, capture_output=True)
    losses = _losses(out)
    assert len([x for x in losses if x[1] == "loss"]) == STEPS
    return losses


def test_resume_after_kill_9_reproduces_the_loss_curve_exactly(
        shards: Path, tmp_path: Path, reference: list[tuple[int, str, float]]) -> None:
    out = tmp_path / "run"
    cmd = _cli(shards, out, "--set", "train.ckpt_every=40")
    assert _kill_after_first_checkpoint(cmd, out) == -signal.SIGKILL
    killed_at = int(json.loads((latest_checkpoint(out / "ckpt") / "state.json").read_text())["step"])
    assert killed_at < STEPS and not (out / "final").exists()
    subprocess.run(cmd, check=True, capture_output=True)
    assert _losses(out) == reference


def test_sigterm_checkpoints_where_it_stopped_and_resume_is_exact(
        shards: Path, tmp_path: Path, reference: list[tuple[int, str, float]]) -> None:
    out = tmp_path / "run"
    # checkpoints only on the signal (and at the end): the one we find was written by the handler
    cmd = _cli(shards, out, "--set", "train.ckpt_every=0")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.2)  # metrics.jsonl appears at step 1; stop a little later
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    stopped_at = int(json.loads((latest_checkpoint(out / "ckpt") / "state.json").read_text())["step"])
    assert 0 < stopped_at < STEPS
    subprocess.run(cmd, check=True, capture_output=True)
    assert _losses(out) == reference
