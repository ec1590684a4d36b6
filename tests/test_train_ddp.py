"""Data-parallel training under torchrun (2 CPU processes, gloo) matches the single-process run.

The two runs see the same global batches and take the same optimiser steps; they differ only in
floating-point reduction order (two half-batch means averaged by DDP's all-reduce vs one mean),
~1e-7 relative per step, which Adam carries forward. Tolerance: every logged training loss and
validation loss agrees within 1e-4 nats absolute over 40 steps (the observed gap was 5e-7).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_shards
from scalelab.train.metrics import read_metrics

TOLERANCE = 1e-4


def _args(shards: Path, out: Path) -> list[str]:
    return ["-m", "scalelab", "pretrain", "--shards", str(shards), "--out", str(out), "--preset", "smoke",
            "--depth", "1", "--set", "train.tokens=20480", "--set", "train.log_every=1",
            "--set", "train.eval_every=20", "--set", "train.ckpt_every=20"]


def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    shards = make_shards(tmp_path, 30_000, 128, seed=1)
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    subprocess.run([sys.executable, *_args(shards, single)], check=True, capture_output=True)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *_args(shards, ddp)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = read_metrics(single), read_metrics(ddp)
    assert [sorted(r) for r in a] == [sorted(r) for r in b]  # same rows: 40 steps, 2 evals
    assert len([r for r in b if "loss" in r]) == 40
    for ra, rb in zip(a, b, strict=True):
        key = "loss" if "loss" in ra else "val_loss"
        assert ra["step"] == rb["step"]
        assert rb[key] == pytest.approx(ra[key], abs=TOLERANCE)
    assert (ddp / "final" / "config.json").is_file()  # rank 0 wrote the model
    assert json.loads((ddp / "result.json").read_text())["world_size"] == 2
