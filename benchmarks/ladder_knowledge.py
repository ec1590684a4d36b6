"""What moves the ladder's knowledge: world and training levers, each a tiny-preset foundation run, side by side.

Each variant is the tiny preset with its `--set` overrides, run through the foundation stages only (world →
tokenizer → shards → ladder → base evals, the same `Stage` objects `scalelab run` runs first), so a variant
costs minutes and needs none of the later stages' dependencies. Variants run in parallel processes
(`--parallel`, `--threads` torch threads each); the table per variant gives, for every rung, the val loss
against the entropy floor over the same tokens, fact recall with its subject-swapped control and the
knowledge gap, hazard knowledge with its no-knowledge baseline, and arithmetic (exact / per digit, by digit
count). BENCHMARKS.md keeps the tables ("The world as an instrument").

    python benchmarks/ladder_knowledge.py --out out/levers --variants base,batch4 --parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SMALL_WORLD = ["world.n_people=400", "world.n_towns=60", "world.n_creatures=40", "world.n_tools=40",
               "world.n_compounds=16", "world.n_reagents=40"]
TINY_WORLD = ["world.n_people=150", "world.n_towns=30", "world.n_creatures=20", "world.n_tools=20",
              "world.n_compounds=12", "world.n_reagents=30"]
# the tiny preset's world (150 people, 32 compounds, 24k documents)
W150_C32 = [*TINY_WORLD, "world.n_compounds=32", "world.n_reagents=48", "world.hazard_rate=0.025", "world.n_docs=24000"]
ARITH25 = "world.genre_weights={story: 0.25, encyclopedia: 0.3, arithmetic: 0.25, chat: 0.2}"
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "batch4": ["train.batch_size=4"],
    "small": [*SMALL_WORLD, "train.batch_size=4"],
    "small_hz05": [*SMALL_WORLD, "train.batch_size=4", "world.hazard_rate=0.05"],
    "small_hz05_zipf09": [*SMALL_WORLD, "train.batch_size=4", "world.hazard_rate=0.05", "world.zipf_exponent=0.9"],
    "small_hz05_lr6e-3": [*SMALL_WORLD, "train.batch_size=4", "world.hazard_rate=0.05", "train.lr=6e-3"],
    "small_hz05_2x": [*SMALL_WORLD, "train.batch_size=4", "world.hazard_rate=0.05", "train.max_tokens=2400000",
                      "train.tokens_per_param=16"],
    "tiny_hz05": [*TINY_WORLD, "train.batch_size=4", "world.hazard_rate=0.05"],
    "tiny_c24_hz03": [*TINY_WORLD, "train.batch_size=4", "world.n_compounds=24", "world.n_reagents=40",
                      "world.hazard_rate=0.03"],
    "w150_c32_hz025_b4": [*W150_C32, "train.batch_size=4"],
    "w150_c32_hz025_b8": [*W150_C32, "train.batch_size=8", "train.lr=4e-3"],
    "tiny_c32_hz03_ar25": [*TINY_WORLD, "train.batch_size=4", "world.n_compounds=32", "world.n_reagents=48",
                           "world.hazard_rate=0.03", ARITH25],
    "w150_c32_hz025_b8_tpp15": [*W150_C32, "train.batch_size=8", "train.lr=4e-3", "train.tokens_per_param=1.5",
                                "train.max_tokens=2400000"],
    "w150_c40_hz02_b8": [*TINY_WORLD, "world.n_compounds=40", "world.n_reagents=60", "world.hazard_rate=0.02",
                         "world.n_docs=24000", "train.batch_size=8", "train.lr=4e-3"],
}


def foundation(out: Path, sets: list[str]) -> None:
    """One variant in this process: the foundation stages into `out`, summary.json written there."""
    from scalelab.artifacts import atomic_write_json
    from scalelab.data.stage import SHARDS, TOKENIZER
    from scalelab.evals.stage import STAGE as BASE_EVALS
    from scalelab.presets import load_config
    from scalelab.stage import Context
    from scalelab.train.stage import STAGE as LADDER
    from scalelab.world.stage import STAGE as WORLD

    cfg = load_config("tiny", ["train.progress=false", *sets])
    ctx = Context.standalone(cfg, out)
    summary: dict = {"preset": "tiny", "corpus": cfg.corpus, "world": None, "sets": sets}
    for stage in (WORLD, TOKENIZER, SHARDS, LADDER, BASE_EVALS):
        section = stage.run(ctx, summary)
        if section is not None:
            summary[stage.section] = section
    atomic_write_json(out / "summary.json", summary)


def run_variant(name: str, sets: list[str], out: Path, threads: int, extra: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--one", str(out / name), *[a for s in [*sets, *extra] for a in ("--set", s)]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (out / f"{name}.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
    res = {"name": name, "sets": sets, "returncode": proc.returncode, "seconds": round(time.perf_counter() - t0, 1)}
    summary = out / name / "summary.json"
    if proc.returncode == 0 and summary.is_file():
        res["summary"] = json.loads(summary.read_text())
    return res


def rows(res: dict) -> list[str]:
    s = res.get("summary")
    if not s:
        return [f"### {res['name']} — failed (exit {res['returncode']}); see {res['name']}.log", ""]
    floor = s["world"]["entropy_floor_nats_per_token"]
    out = [f"### {res['name']} (`{' '.join(res['sets']) or 'tiny defaults'}`), {res['seconds']} s", "",
           f"floor {floor:.3f} nats/token over {s['world'].get('entropy_floor_docs')} val documents; "
           f"{s['world'].get('fact_bits')} bits of facts", "",
           "| rung | params | tokens | val loss | − floor | fact recall | control | gap | FR baseline | hazard | "
           "HZ baseline | arith exact / per digit | exact / per digit by digits |",
           "|" + "---|" * 13]
    for m in s["models"]:
        e = m.get("evals") or {}
        ar = e.get("details", {}).get("arithmetic", {})
        by = ", ".join(f"{k}: {v['exact_match']:.2f}/{v['per_digit']:.2f}" for k, v in ar.get("by_digits", {}).items())
        b = e.get("baselines", {})
        out.append(f"| {m['name']} | {m['params']:,} | {m['tokens']:,} | {m['final_val_loss']:.3f} | "
                   f"{m['final_val_loss'] - floor:+.3f} | {e.get('fact_recall', 0):.3f} | "
                   f"{e.get('fact_recall_control') or 0:.3f} | {e.get('knowledge_gap') or 0:+.3f} | "
                   f"{b.get('fact_recall', 0):.3f} | {e.get('hazard_knowledge', 0):.3f} | "
                   f"{b.get('hazard_knowledge', 0):.3f} | {ar.get('accuracy', 0):.2f} / "
                   f"{ar.get('per_digit_accuracy', 0):.2f} | {by} |")
    return [*out, ""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--one", type=Path, help="run one variant (its --set overrides) into this folder")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch threads per variant")
    p.add_argument("--set", dest="extra", action="append", default=[], help="override added to every variant")
    args = p.parse_args()
    if args.one is not None:
        foundation(args.one, args.extra)
        return
    if args.out is None:
        p.error("--out is required")
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda n: run_variant(n, VARIANTS[n], args.out, args.threads, args.extra), names))
    text = "\n".join(line for r in results for line in rows(r))
    (args.out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
