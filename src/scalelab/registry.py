"""The run registry: which runs happened, what each consumed and produced, and their lineage.

One SQLite file in WAL mode, so several processes (a `scalelab run` and a `torchrun` worker, or two
runs sharing an output root) can write at once: WAL lets readers proceed during a write, and every
write is one short transaction retried on `database is locked`, so nothing is lost. Any number in a
report can be traced back, through `artifacts.parents`, to the data and config that produced it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    host TEXT NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT REFERENCES runs(id),
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT,
    config_hash TEXT,
    parents TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS consumed (
    run_id TEXT REFERENCES runs(id),
    path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_path ON artifacts(path);
"""


@dataclass
class RunRow:
    id: str
    stage: str
    status: str
    started: float
    ended: float | None
    host: str
    config: dict[str, Any]
    error: str | None


class Registry:
    """A handle on `runs.sqlite`; cheap to open, safe to use from several processes at once."""

    def __init__(self, path: Path, timeout: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        """One short IMMEDIATE transaction, retried while another writer holds the lock."""
        deadline = time.monotonic() + self.timeout
        while True:
            con = self._connect()
            try:
                con.execute("BEGIN IMMEDIATE")
                cur = con.execute(sql, args)
                con.execute("COMMIT")
                return int(cur.lastrowid or 0)
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
            finally:
                con.close()

    def start_run(self, stage: str, config: dict[str, Any] | None = None) -> str:
        run_id = f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._write(
            "INSERT INTO runs (id, stage, config, status, started, host) VALUES (?, ?, ?, 'running', ?, ?)",
            (run_id, stage, json.dumps(config or {}, default=str), time.time(), socket.gethostname()),
        )
        return run_id

    def end_run(self, run_id: str, status: str = "finished", error: str | None = None) -> None:
        self._write("UPDATE runs SET status=?, ended=?, error=? WHERE id=?", (status, time.time(), error, run_id))

    def record_artifact(self, run_id: str | None, kind: str, path: Path, sha256: str | None = None,
                        config_hash: str | None = None, parents: list[str] | None = None) -> int:
        return self._write(
            "INSERT INTO artifacts (run_id, kind, path, sha256, config_hash, parents, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, kind, str(Path(path).resolve()), sha256, config_hash,
             json.dumps([str(Path(p).resolve()) for p in parents or []]), time.time()),
        )

    def record_consumed(self, run_id: str, path: Path) -> None:
        self._write("INSERT INTO consumed (run_id, path) VALUES (?, ?)", (run_id, str(Path(path).resolve())))

    @contextmanager
    def run(self, stage: str, config: dict[str, Any] | None = None) -> Iterator[str]:
        """Context manager: a run marked finished on success, failed (with the error) otherwise."""
        run_id = self.start_run(stage, config)
        try:
            yield run_id
        except BaseException as err:
            status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            self.end_run(run_id, status, f"{type(err).__name__}: {err}")
            raise
        self.end_run(run_id, "finished")

    def runs(self, limit: int = 100) -> list[RunRow]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT id, stage, status, started, ended, host, config, error FROM runs"
                " ORDER BY started DESC LIMIT ?", (limit,),
            ).fetchall()
        return [RunRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7]) for r in rows]

    def artifacts(self, run_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, run_id, kind, path, sha256, config_hash, parents, created FROM artifacts"
        args: tuple[Any, ...] = ()
        if run_id:
            sql += " WHERE run_id=?"
            args = (run_id,)
        with self._connect() as con:
            rows = con.execute(sql + " ORDER BY id", args).fetchall()
        keys = ("id", "run_id", "kind", "path", "sha256", "config_hash", "parents", "created")
        out = [dict(zip(keys, r, strict=True)) for r in rows]
        for a in out:
            a["parents"] = json.loads(a["parents"])
        return out

    def lineage(self, path: Path) -> list[dict[str, Any]]:
        """The artifact at `path` and, recursively, every artifact it was made from (newest record each)."""
        by_path = {a["path"]: a for a in self.artifacts()}
        seen: list[dict[str, Any]] = []
        stack = [str(Path(path).resolve())]
        visited: set[str] = set()
        while stack:
            p = stack.pop()
            if p in visited or p not in by_path:
                continue
            visited.add(p)
            seen.append(by_path[p])
            stack.extend(by_path[p]["parents"])
        return seen
