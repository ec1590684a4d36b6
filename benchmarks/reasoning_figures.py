"""The reasoning figures of BENCHMARKS.md from a folder `scalelab reason` wrote: per task, pass@k and majority@k
of every step (with the held-out harder difficulty), GRPO's seeds, and a table of the numbers.

    .venv/bin/python benchmarks/reasoning_figures.py --out OUT [--task arithmetic] [--png-dir docs/figures]

It reads `OUT/reasoning/<task>/evals/<step>/results.json` (what `scalelab reason sft|star|grpo|eval` leave) and
prints one Markdown row per step: greedy, pass@1 / pass@k, majority@k, the harder difficulty, self-verification.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalelab.layout import RunLayout
from scalelab.reasoning.passk import mean_interval
from scalelab.reasoning.plots import plot_pass_at_k

ORDER = ("start", "sft-direct", "sft", "star", "grpo")


def _order(name: str) -> tuple[int, str]:
    base = name.split("-s")[0] if name.startswith("grpo") else name
    return (ORDER.index(base) if base in ORDER else len(ORDER), name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--task", action="append", default=None)
    ap.add_argument("--png-dir", type=Path, default=None, help="where the plots go (default: OUT/reasoning)")
    args = ap.parse_args()
    layout = RunLayout(args.out)
    tasks = args.task or sorted(p.name for p in layout.reasoning_root.iterdir() if p.is_dir())
    for task in tasks:
        evals_dir = layout.reasoning_root / task / "evals"
        if not evals_dir.is_dir():
            continue
        evals = {p.name: json.loads((p / "results.json").read_text()) for p in sorted(evals_dir.iterdir(), key=lambda
                 p: _order(p.name)) if (p / "results.json").is_file()}
        png = plot_pass_at_k(task, evals, (args.png_dir or layout.reasoning_root) / f"pass_at_k_{task}.png")
        print(f"\n{task} → {png}\n")
        print("| step | greedy | pass@1 | pass@k | majority@k | harder greedy | harder pass@1 | self-verification |")
        print("|---|---|---|---|---|---|---|---|")
        for name, ev in evals.items():
            k = max(ev["pass_at_k"], key=int)
            sv = (ev.get("self_verification") or {}).get("agreement")
            print(f"| {name} | {ev['greedy']:.3f} | {ev['pass_at_k']['1']:.3f} | {ev['pass_at_k'][k]:.3f} (k={k}) | "
                  f"{ev['majority_at_k'][k]:.3f} | {ev['heldout_difficulty_greedy']:.3f} | "
                  f"{ev['heldout_difficulty_pass_at_1']:.3f} | {'–' if sv is None else f'{sv:.2f}'} |")
        seeds = [ev["pass_at_k"]["1"] for name, ev in evals.items() if name.startswith("grpo")]
        if len(seeds) > 1:
            mean, lo, hi = mean_interval(seeds)
            print(f"\nGRPO over {len(seeds)} seeds: pass@1 {mean:.3f} [{lo:.3f}, {hi:.3f}] (95% t interval)")


if __name__ == "__main__":
    main()
