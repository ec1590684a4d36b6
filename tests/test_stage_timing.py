"""A stage's wall time across resumes: a rerun that skips every step reports the time recorded when the work was
done, not the time the skipping took; a rerun that builds a step measures again. The clock is a fake one
advanced by the steps, so the numbers are exact."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from scalelab import stage
from scalelab.stage import STAGE_SECONDS, Context


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(stage.time, "perf_counter", fake)
    return fake


def _run(ctx: Context, clock: FakeClock, config: dict, *, skip_cost: float, work: float) -> stage.StageClock:
    """One timed stage of one step: `work` seconds when the step builds, `skip_cost` seconds around it."""
    def build(out: Path) -> dict:
        clock.now += work
        return {"made": True}

    with ctx.timed("demo") as timer:
        clock.now += skip_cost
        ctx.step("demo:one", "demo", ctx.layout.root / "one", config, [], build)
    return timer


def test_a_rerun_that_skips_everything_keeps_the_recorded_time(tmp_path, clock) -> None:
    ctx = Context.standalone(SimpleNamespace(), tmp_path, log=lambda s: None)
    first = _run(ctx, clock, {"a": 1}, skip_cost=2.0, work=100.0)
    assert first.seconds == pytest.approx(102.0) and not first.resumed
    assert json.loads((tmp_path / STAGE_SECONDS).read_text()) == {"demo": pytest.approx(102.0)}

    again = Context.standalone(SimpleNamespace(), tmp_path, log=lambda s: None)  # a new `scalelab run`
    rerun = _run(again, clock, {"a": 1}, skip_cost=2.0, work=100.0)
    assert again.built == 0  # the step was skipped as done
    assert rerun.seconds == pytest.approx(102.0) and rerun.resumed

    changed = _run(again, clock, {"a": 2}, skip_cost=2.0, work=30.0)  # a new config: the step builds
    assert changed.seconds == pytest.approx(32.0) and not changed.resumed
    assert json.loads((tmp_path / STAGE_SECONDS).read_text())["demo"] == pytest.approx(32.0)


def test_without_a_record_a_skipping_stage_reports_what_it_measured_and_records_nothing(tmp_path, clock) -> None:
    ctx = Context.standalone(SimpleNamespace(), tmp_path, log=lambda s: None)
    _run(ctx, clock, {"a": 1}, skip_cost=2.0, work=100.0)
    (tmp_path / STAGE_SECONDS).unlink()  # a run folder from before the record
    rerun = _run(Context.standalone(SimpleNamespace(), tmp_path, log=lambda s: None), clock, {"a": 1},
                 skip_cost=2.0, work=100.0)
    assert rerun.seconds == pytest.approx(2.0) and not rerun.resumed
    assert not (tmp_path / STAGE_SECONDS).exists()


def test_torch_threads_sets_the_count_for_the_block_and_restores_it() -> None:
    import torch

    before = torch.get_num_threads()
    with stage.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), stage.torch_threads(1):
        raise RuntimeError("a failing block restores the count too")
    assert torch.get_num_threads() == before
    with stage.torch_threads(0):  # 0: left as it is
        assert torch.get_num_threads() == before
