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


def section_instrument(summary: Summary, out: Path) -> str:
    """Each rung's scores beside their controls (knowledge gap, no-knowledge baselines); the targets they are
    judged against are the report's own section (`report.targets`), since some read later stages."""
    models = [m for m in summary.get("models", []) if (m.get("evals") or {}).get("fact_recall_control") is not None]
    if not models:
        return ""
    rows = []
    for m in models:
        e = m["evals"]
        d = e["details"]
        rows.append([m["name"], e["fact_recall"], e["fact_recall_control"], e["knowledge_gap"],
                     d["fact_recall"]["baseline"], e["hazard_knowledge"], d["hazard_knowledge"]["baseline"],
                     d["hazard_knowledge"]["chance"]])
    lines = ["## Knowledge against its controls", "",
             "*Control*: every fact-recall prompt asked about another entity of the same kind, scored against the "
             "original answer; a model that knows which values are common for a relation, not which entity has "
             "which, scores as well there. *Knowledge gap* = accuracy − control (on the items with a control). "
             "*Baseline*: the best no-knowledge predictor of a multiple-choice set — chance, eliminating choices "
             "the prompt rules out, or the slot's most frequent value in training (`evals.baselines`); it is the "
             "floor the forecasts and the policy's lines are read against.", "",
             table(["model", "fact recall", "control", "gap", "FR baseline", "hazard", "HZ baseline", "chance"], rows)]
    return "\n".join(lines)


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
        "Exact match / per-digit accuracy on problems the corpus holds out (one in eight: "
        "`world.genres.arithmetic.is_heldout`), so a right answer is computed, not recalled. Exact match on long "
        "sums can look like a sudden 'emergent' jump while per-digit accuracy improves smoothly (Schaeffer et al., "
        "2023).", "",
        table(["model", *[f"{d} digits" for d in digits]], rows),
    ])


def section_evals(summary: Summary, out: Path) -> str:
    return "\n\n".join(p for p in (section_instrument(summary, out), section_arithmetic(summary, out)) if p)


STAGE = Stage("evals", run_base_evals, section_evals, optional=False)
