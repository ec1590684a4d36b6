"""The sandbox an episode's computer runs in: no network but loopback, one writable folder, nothing kept.

`SandboxedComputer` starts the worker (`worker.py`: browser, X server, applications) under bubblewrap:
a new network namespace (only `lo`, so nothing outside the machine — or on the host's own loopback — is
reachable), new PID/IPC/UTS namespaces (every process dies with the sandbox), the root file system
mounted read-only, a private `/tmp`, and one writable work folder holding the throwaway home and browser
profile. Closing the sandbox ends its processes and deletes the work folder. The step limit is enforced
inside the worker; the confirmation hook runs in the harness (`runner.play_episode`).

Without bubblewrap (`sandbox=False`, or `scalelab computer run --no-sandbox`) the same worker runs as a
plain subprocess — no isolation, for machines where bwrap is missing; the results say which was used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from scalelab.computer.injection import Attack
from scalelab.errors import InputError, MissingInput, UserError

BACKENDS = ("miniwob", "desktop")


class SandboxError(RuntimeError):
    """The worker died or answered with a bug report; the message carries its stderr tail."""


def bwrap_command(work: Path, inner: list[str]) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise MissingInput("bubblewrap (bwrap) is not installed: run scripts/system-deps.sh (Debian package "
                           "bubblewrap), or pass --no-sandbox to run without isolation")
    return [bwrap, "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--tmpfs", "/dev/shm", "--bind", str(work), str(work), "--setenv", "HOME", str(work / "home"),
            "--setenv", "TMPDIR", "/tmp", "--chdir", str(work), "--", *inner]


def run_in_sandbox(inner: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one command in a fresh sandbox (its own throwaway work folder, deleted after)."""
    work = Path(tempfile.mkdtemp(prefix="scalelab-sandbox-"))
    (work / "home").mkdir()
    try:
        return subprocess.run(bwrap_command(work, inner), capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class SandboxedComputer:
    """A computer in a sandboxed worker process, with the same methods as an in-process one."""

    def __init__(self, backend: str = "miniwob", max_steps: int = 12, sandbox: bool = True):
        if backend not in BACKENDS:
            raise InputError(f"unknown backend {backend!r}; use {' or '.join(BACKENDS)}")
        self.work = Path(tempfile.mkdtemp(prefix="scalelab-computer-"))
        (self.work / "home").mkdir()
        inner = [sys.executable, "-m", "scalelab.computer.worker", "--backend", backend, "--work",
                            str(self.work), "--max-steps", str(max_steps)]
        cmd = bwrap_command(self.work, inner) if sandbox else inner
        self.sandboxed = sandbox
        # the worker's stderr, kept outside the work folder so a crash can be reported after cleanup
        self._stderr = open(self.work.parent / f"{self.work.name}.stderr", "w+")  # noqa: SIM115 (closed in close())
        env = {**os.environ, "HOME": str(self.work / "home"), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     text=True, env=env, start_new_session=True)
        self.closed = False
        hello = self._read()
        self.size = tuple(hello["size"])
        self.backend = hello["backend"]

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read()[-3000:]
            self.close()
            raise SandboxError(f"the sandboxed worker exited (code {self.proc.poll()}):\n{tail}")
        reply = json.loads(line)
        if "error" in reply:
            if reply.get("user"):
                raise InputError(reply["error"])
            raise SandboxError(reply["error"])
        return reply["ok"]

    def call(self, **req: Any) -> Any:
        if self.closed:
            raise UserError("this sandbox is closed; start a new one")
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def reset(self, task: str, seed: int, attack: Attack | None = None, defence: bool = False,
              observe: bool = True) -> dict[str, Any]:
        return self.call(cmd="reset", task=task, seed=seed, attack=attack.to_dict() if attack else None,
                         defence=defence, observe=observe)

    def step(self, action: Any, observe: bool = True) -> dict[str, Any]:
        return self.call(cmd="step", action=action, observe=observe)

    def probe(self, coordinate: list[int]) -> dict[str, Any] | None:
        return self.call(cmd="probe", coordinate=coordinate)

    def close(self) -> None:
        """End every process of the sandbox and delete its work folder (home, profile, files)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.proc.poll() is None and self.proc.stdin:
                self.proc.stdin.write(json.dumps({"cmd": "close"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only the sandbox's processes
            self.proc.wait()
        self._stderr.close()
        Path(self._stderr.name).unlink(missing_ok=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> SandboxedComputer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
