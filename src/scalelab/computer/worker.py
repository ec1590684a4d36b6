"""The process inside the sandbox: it owns the screen (browser, X server) and serves one JSON line per call.

`python -m scalelab.computer.worker --backend miniwob --work DIR --max-steps N` reads requests on stdin
(`reset`, `step`, `probe`, `close`) and answers each on stdout. Only this protocol crosses the sandbox's
boundary: the agent, its model and any API key stay outside. Anything printed by the libraries goes to
stderr so it cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any

from scalelab.computer.injection import Attack
from scalelab.errors import UserError


def make_computer(backend: str, work: str, max_steps: int) -> Any:
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    if backend == "miniwob":
        from scalelab.computer.envs.miniwob import MiniWoBComputer

        return MiniWoBComputer(os.path.join(home, "chromium-profile"), max_steps)
    if backend == "desktop":
        from scalelab.computer.envs.desktop import DesktopComputer

        return DesktopComputer(work, max_steps)
    raise UserError(f"unknown backend {backend!r}; use miniwob or desktop")


def serve(computer: Any, inp: Any, out: Any) -> None:
    for line in inp:
        req = json.loads(line)
        cmd = req.get("cmd")
        try:
            if cmd == "reset":
                atk = Attack(**req["attack"]) if req.get("attack") else None
                reply: dict[str, Any] = {"ok": computer.reset(req["task"], int(req["seed"]), attack=atk,
                                                              defence=bool(req.get("defence")),
                                                              observe=req.get("observe", True))}
            elif cmd == "step":
                reply = {"ok": computer.step(req.get("action"), observe=req.get("observe", True))}
            elif cmd == "probe":
                reply = {"ok": computer.probe(req["coordinate"])}
            elif cmd == "close":
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                return
            else:
                reply = {"error": f"unknown command {cmd!r}", "user": True}
        except UserError as e:
            reply = {"error": str(e), "user": True}
        except Exception as e:  # a bug in the backend: report it with its traceback, keep serving
            reply = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()}", "user": False}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="miniwob")
    ap.add_argument("--work", required=True)
    ap.add_argument("--max-steps", type=int, default=12)
    args = ap.parse_args()
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    computer = make_computer(args.backend, args.work, args.max_steps)
    proto.write(json.dumps({"ok": {"size": list(computer.size), "backend": computer.backend}}) + "\n")
    proto.flush()
    try:
        serve(computer, sys.stdin, proto)
    finally:
        computer.close()


if __name__ == "__main__":
    main()
