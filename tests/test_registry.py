"""The SQLite run registry: lineage, status on failure, and two writers at once losing nothing."""

import multiprocessing as mp

import pytest

from scalelab.registry import Registry


def _writer(db: str, tag: str, n: int) -> None:
    reg = Registry(db)
    for i in range(n):
        with reg.run(f"{tag}-stage", {"i": i}) as run_id:
            reg.record_artifact(run_id, "thing", f"/tmp/{tag}/{i}", sha256="0" * 64, parents=[f"/tmp/{tag}/{i - 1}"])


def test_two_writers_lose_nothing(tmp_path):
    db = str(tmp_path / "runs.sqlite")
    Registry(db)  # create the schema once before the race
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, tag, 150)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    reg = Registry(db)
    assert len(reg.runs(limit=1000)) == 300
    assert all(r.status == "finished" for r in reg.runs(limit=1000))
    assert len(reg.artifacts()) == 300


def test_lineage_and_failed_status(tmp_path):
    reg = Registry(tmp_path / "r.sqlite")
    with reg.run("world") as rid:
        reg.record_artifact(rid, "corpus", tmp_path / "world")
    with reg.run("tokenizer") as rid:
        reg.record_consumed(rid, tmp_path / "world")
        reg.record_artifact(rid, "tokenizer", tmp_path / "tok", parents=[tmp_path / "world"])
    with reg.run("shards") as rid:
        reg.record_artifact(rid, "shards", tmp_path / "shards", parents=[tmp_path / "tok", tmp_path / "world"])
    kinds = {a["kind"] for a in reg.lineage(tmp_path / "shards")}
    assert kinds == {"shards", "tokenizer", "corpus"}
    with pytest.raises(RuntimeError), reg.run("pretrain"):
        raise RuntimeError("boom")
    last = reg.runs()[0]
    assert last.stage == "pretrain" and last.status == "failed" and "boom" in last.error
