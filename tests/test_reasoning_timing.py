"""The reasoning stage's time on a resumed run: the recorded seconds of the steps it reused are added back, each
step counted once and only at the outermost level."""

from __future__ import annotations

import json
import time

from scalelab.artifacts import read_meta
from scalelab.reasoning.report import section_reasoning
from scalelab.reasoning.timing import TimedContext, timing
from scalelab.stage import Context


def _build():
    def build(d):
        (d / "x.json").write_text("{}")
        return {"made": True}
    return build


def _fake_seconds(folder, seconds: float, created: str) -> None:
    """Rewrite a finished step's record as if its build had taken `seconds`, at `created`."""
    meta = read_meta(folder)
    meta["result"]["stage_seconds"] = seconds
    meta["created"] = created
    (folder / "meta.json").write_text(json.dumps(meta))


def test_reused_steps_add_their_recorded_seconds(tmp_path):
    ctx = Context.standalone({"c": 1}, tmp_path, log=lambda _: None)
    for name in ("a", "b"):
        ctx.step(name, "thing", tmp_path / name, {"n": name}, [], _build())
        _fake_seconds(tmp_path / name, 40.0, "2020-01-01T00:00:00+0000")
    timed = TimedContext.around(ctx, since=time.time())
    assert timed.cfg == ctx.cfg and timed.layout == ctx.layout and timed.registry is ctx.registry

    def outer(d):  # a step built inside another's build is inside its seconds: not counted again
        timed.step("inner", "thing", tmp_path / "inner", {"n": "inner"}, [], _build())
        return {"made": True}

    for _ in range(2):  # the same folder stepped twice (workers' runs are read back by the parent): counted once
        timed.step("a", "thing", tmp_path / "a", {"n": "a"}, [], _build())
    timed.step("b", "thing", tmp_path / "b", {"n": "b"}, [], _build())
    timed.step("outer", "thing", tmp_path / "outer", {"n": "outer"}, [], outer)
    assert sorted(p.rsplit("/", 1)[-1] for p in timed.steps) == ["a", "b", "outer"]
    t = timing(timed, run_seconds=2.0)
    assert t["steps"] == 3 and t["reused_steps"] == 2 and t["reused_step_seconds"] == 80.0
    assert t["seconds"] == 82.0 and t["run_seconds"] == 2.0

    md = section_reasoning({"reasoning": {"seconds": t["seconds"], "timing": t}}, tmp_path)
    assert "The stage took 82.0 s: 2 of its 3 steps were made by an earlier run" in md and "this run took 2.0 s" in md


def test_a_run_that_built_everything_reports_its_own_time(tmp_path):
    ctx = Context.standalone({"c": 1}, tmp_path, log=lambda _: None)
    timed = TimedContext.around(ctx, since=time.time())
    timed.step("a", "thing", tmp_path / "a", {"n": "a"}, [], _build())
    t = timing(timed, run_seconds=5.0)
    assert (t["steps"], t["reused_steps"], t["seconds"]) == (1, 0, 5.0)
    ctx.results = {}
    timed.results["seen"] = True
    timed.log = print
    timed.hand_back(ctx)  # what changed through the view is the run's: the original context sees it
    assert ctx.results == {"seen": True} and ctx.log is print
    md = section_reasoning({"reasoning": {"seconds": t["seconds"], "timing": t}}, tmp_path)
    assert "The stage took 5.0 s." in md
