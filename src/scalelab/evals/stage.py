"""The `evals` stage of `scalelab run`: each ladder model scored on the world's base eval sets.

Scores go to RUN/evals/d{N}/results.json and into the rung's row of `summary.json["models"]` (`evals`), next
to the model they describe. A run on real text has no labelled sets, so the stage does nothing there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab import artifacts
from scalelab.config import to_dict
from scalelab.evals.base import evaluate_base_model
from scalelab.report.render import table
from scalelab.stage import Context, Stage, Summary


def evaluate_rung(ctx: Context, name: str) -> dict[str, Any]:
    """The base evals of one ladder model (skipped when already scored)."""
    cfg = {"evals": to_dict(ctx.cfg.evals), "model": name}

    def build(d: Path) -> dict[str, Any]:
        res = evaluate_base_model(ctx.layout.model(name), ctx.layout.world, ctx.cfg.evals, device=ctx.cfg.train.device)
        artifacts.atomic_write_json(d / "results.json", res)
        return res

    return ctx.step(f"evals:{name}", "eval_results", ctx.layout.evals(name), cfg,
                    [ctx.layout.rung(name), ctx.layout.world], build)


def run_base_evals(ctx: Context, summary: Summary) -> None:
    if ctx.cfg.corpus != "world":
        return
    for row in summary.get("models", []):
        row["evals"] = evaluate_rung(ctx, row["name"])


def section_arithmetic(summary: Summary, out: Path) -> str:
    models = [m for m in summary.get("models", []) if m.get("evals")]
    if not models:
        return ""
    digits = sorted({d for m in models for d in m["evals"]["details"]["arithmetic"]["by_digits"]}, key=int)
    rows = []
    for m in models:
        by = m["evals"]["details"]["arithmetic"]["by_digits"]
        rows.append([m["name"]] + [f"{by[d]['exact_match']:.2f} / {by[d]['per_digit']:.2f}" if d in by else "–"
                                   for d in digits])
    return "\n".join([
        "## Arithmetic by digit count", "",
        "Exact match / per-digit accuracy. Exact match on long sums can look like a sudden 'emergent' jump "
        "while per-digit accuracy improves smoothly (Schaeffer et al., 2023).", "",
        table(["model", *[f"{d} digits" for d in digits]], rows),
    ])


STAGE = Stage("evals", run_base_evals, section_arithmetic, optional=False)
