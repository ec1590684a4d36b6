"""A bounded loopback load test of `scalelab serve`: /api/ask and /api/chat, p50/p99 latency and errors.

Starts the server on 127.0.0.1 (a free port), waits for it, sends `--requests` requests per endpoint with at most
`--concurrency` in flight (questions and prompts cycle through the world's chat questions), then stops the
server. Every loop is bounded in count and in time (`--deadline` seconds in all); traffic goes to loopback only.

    python benchmarks/web_load.py --run out/smoke --requests 200 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from scalelab.layout import RunLayout
from scalelab.world.reader import WorldDir
from scalelab.world.templates import FACT_QUESTIONS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def questions(run: Path, n: int) -> list[str]:
    world = WorldDir(RunLayout(run).world).world()
    out = []
    for kind, facts in FACT_QUESTIONS.items():
        for e in world.entities[kind][:8]:
            out += [opener + e.name + tail for opener, tail in facts.values()]
    return (out * (n // max(1, len(out)) + 1))[:n]


async def hammer(base: str, path: str, bodies: list[dict], concurrency: int, deadline: float) -> dict:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def one(client: httpx.AsyncClient, body: dict) -> None:
        async with sem:
            if time.monotonic() > deadline:
                errors["skipped: deadline"] = errors.get("skipped: deadline", 0) + 1
                return
            t0 = time.perf_counter()
            try:
                r = await client.post(base + path, json=body)
                if r.status_code != 200:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                    return
            except httpx.HTTPError as err:
                errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
                return
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as client:
        await asyncio.gather(*(one(client, b) for b in bodies))
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"requests": len(bodies), "ok": len(latencies), "errors": errors, "wall_s": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 2), "p50_s": round(q[49], 3), "p99_s": round(q[98], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--chat-model", default="sft")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--deadline", type=float, default=900.0, help="seconds for the whole test")
    args = ap.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "scalelab", "serve", "--out", str(args.run), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.deadline
    try:
        while True:  # wait for the server (bounded by the deadline)
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                tail = server.stderr.read().decode()[-2000:] if server.stderr else ""
                raise SystemExit(f"server did not start: {tail}")
            time.sleep(0.5)
        qs = questions(args.run, args.requests)
        httpx.post(base + "/api/ask", json={"question": qs[0]}, timeout=300)  # index built, model loaded
        httpx.post(base + "/api/chat", json={"model": args.chat_model, "messages": [{"role": "user", "content": "Hi"}],
                                             "max_tokens": 4}, timeout=300)
        load0 = os.getloadavg()
        report = {"load_avg_start": load0, "concurrency": args.concurrency, "cpu_count": os.cpu_count()}
        report["ask"] = asyncio.run(hammer(base, "/api/ask", [{"question": q} for q in qs], args.concurrency,
                                           deadline))
        chat = [{"model": args.chat_model, "messages": [{"role": "user", "content": q}], "max_tokens": args.max_tokens,
                 "temperature": 0.7, "seed": i} for i, q in enumerate(qs)]
        report["chat"] = asyncio.run(hammer(base, "/api/chat", chat, args.concurrency, deadline))
        report["load_avg_end"] = os.getloadavg()
        print(json.dumps(report, indent=1))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
