"""Precision by measurement: auto picks bf16 only where it measured faster, remembers the choice per host and
shape set, and forced or CUDA choices skip the measurement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scalelab.errors import InputError
from scalelab.model.precision import MARGIN, choose_precision, matmul_rates, matmul_shapes

SHAPES = matmul_shapes(64, 176, 512, 256)
CPU = torch.device("cpu")


def fake(rates: dict[str, float]):
    calls = []

    def measure(shapes):
        calls.append(list(shapes))
        return rates
    return measure, calls


def test_auto_picks_bf16_only_when_it_is_faster_by_the_margin(tmp_path: Path) -> None:
    fast, _ = fake({"fp32": 100.0, "bf16": 100.0 * MARGIN + 1})
    slow, _ = fake({"fp32": 100.0, "bf16": 100.0 * MARGIN - 1})
    assert choose_precision("auto", CPU, SHAPES, measure=fast, cache=tmp_path / "a.json").dtype == "bf16"
    p = choose_precision("auto", CPU, SHAPES, measure=slow, cache=tmp_path / "b.json")
    assert p.dtype == "fp32" and p.autocast is None and p.reason == "measured" and "GFLOP/s" in p.describe()


def test_the_choice_is_cached_per_host_and_shapes(tmp_path: Path) -> None:
    cache = tmp_path / "precision.json"
    measure, calls = fake({"fp32": 50.0, "bf16": 150.0})
    first = choose_precision("auto", CPU, SHAPES, measure=measure, cache=cache)
    again = choose_precision("auto", CPU, SHAPES, measure=measure, cache=cache)
    assert len(calls) == 1 and first.dtype == again.dtype == "bf16" and again.reason == "cached"
    assert first.autocast is torch.bfloat16
    other = matmul_shapes(128, 352, 512, 256)
    choose_precision("auto", CPU, other, measure=measure, cache=cache)
    assert len(calls) == 2 and len(json.loads(cache.read_text())) == 2  # another shape set is measured anew


def test_forced_and_cuda_choices_do_not_measure(tmp_path: Path) -> None:
    measure, calls = fake({"fp32": 1.0, "bf16": 1.0})
    assert choose_precision("fp32", CPU, SHAPES, measure=measure, cache=tmp_path / "c").dtype == "fp32"
    assert choose_precision("bf16", CPU, SHAPES, measure=measure, cache=tmp_path / "c").reason == "forced"
    assert choose_precision("auto", torch.device("cuda"), SHAPES, measure=measure).dtype == "bf16"
    assert calls == []
    with pytest.raises(InputError, match="fp16"):
        choose_precision("fp16", CPU, SHAPES)


def test_a_real_measurement_gives_positive_rates() -> None:
    rates = matmul_rates([(32, 16, 24)], reps=3)
    assert set(rates) == {"fp32", "bf16"} and all(r > 0 for r in rates.values())


def test_training_records_its_precision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import make_shards
    from scalelab.model.config import ModelConfig
    from scalelab.train.config import TrainConfig
    from scalelab.train.loop import pretrain

    monkeypatch.setenv("SCALELAB_PRECISION_CACHE", str(tmp_path / "cache.json"))
    # one process on a CPU times its own step (train.precision_probe), not the matmul benchmark
    monkeypatch.setattr("scalelab.model.precision.matmul_rates", lambda shapes: {"fp32": 40.0, "bf16": 10.0})
    monkeypatch.setattr("scalelab.train.loop.step_measure",
                        lambda *a, **k: lambda shapes: {"fp32": 10.0, "bf16": 40.0})
    shards = make_shards(tmp_path, 6000, 64, seed=0)
    res = pretrain(ModelConfig(depth=1, aspect_ratio=32, head_dim=16, vocab_size=64, max_seq_len=32),
                   TrainConfig(seq_len=32, batch_size=4, tokens=1024, eval_tokens=256, eval_every=0, ckpt_every=0,
                               progress=True), shards, tmp_path / "run")
    assert res["dtype"] == "bf16" and res["precision"]["rates"] == {"fp32": 10.0, "bf16": 40.0}
    assert res["precision"]["probe"] == "train-step"
    out = capsys.readouterr()
    # the progress names why
    assert "precision bf16 (measured: bf16 40 vs fp32 10 GFLOP/s, train-step)" in out.out + out.err


def test_a_probe_has_its_own_cache_entry(tmp_path: Path) -> None:
    cache = tmp_path / "precision.json"
    matmuls, _ = fake({"fp32": 50.0, "bf16": 150.0})
    step, calls = fake({"fp32": 50.0, "bf16": 40.0})
    assert choose_precision("auto", CPU, SHAPES, measure=matmuls, cache=cache).dtype == "bf16"
    p = choose_precision("auto", CPU, SHAPES, measure=step, cache=cache, probe="train-step depth 1")
    assert len(calls) == 1 and p.dtype == "fp32" and p.reason == "measured" and p.probe == "train-step"


def test_the_margin_is_the_callers(tmp_path: Path) -> None:
    measure, _ = fake({"fp32": 100.0, "bf16": 115.0})
    assert choose_precision("auto", CPU, SHAPES, measure=measure, cache=tmp_path / "a.json").dtype == "fp32"
    assert choose_precision("auto", CPU, SHAPES, measure=measure, cache=tmp_path / "b.json", margin=1.1).dtype == "bf16"


def test_the_step_probe_times_both_dtypes_and_leaves_the_model_as_built() -> None:
    from scalelab.model.config import ModelConfig
    from scalelab.model.llama import Llama
    from scalelab.train.precision_probe import step_measure

    cfg = ModelConfig(depth=1, aspect_ratio=32, head_dim=16, vocab_size=64, max_seq_len=32)
    model = Llama(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rates = step_measure(model, cfg, batch=2, seq_len=16, device=CPU, reps=1)(SHAPES)
    assert set(rates) == {"fp32", "bf16"} and all(r > 0 for r in rates.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
