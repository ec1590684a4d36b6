"""The `evals` stage of `scalelab run`: each ladder model scored on the world's base eval sets.

Scores go to RUN/evals/d{N}/results.json and into the rung's row of `summary.json["models"]` (`evals`), next
to the model they describe. A run on real text has no labelled sets, so the stage does nothing there.
"""

from __future__ import annotations

import itertools
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


# What the ladder must show for the world to be an instrument (the tiny preset's targets): knowledge that rises
# with scale beside its controls, and a loss that approaches a reachable bound.
KNOWLEDGE_GAP_TARGET = 0.30
HAZARD_TARGET = 0.60
HAZARD_START_TOLERANCE = 0.05
BOUND_TARGET = 0.35


def _rising(values: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def instrument_targets(models: list[dict[str, Any]], floor: float | None) -> list[dict[str, Any]]:
    """Each target the ladder must meet, with the figures it was judged on and whether it is met."""
    rows = [m for m in models if (m.get("evals") or {}).get("knowledge_gap") is not None]
    if len(rows) < 2:
        return []
    ev = [m["evals"] for m in rows]
    gap = [e["knowledge_gap"] for e in ev]
    hz = [e["hazard_knowledge"] for e in ev]
    hz_base = ev[0]["baselines"]["hazard_knowledge"]
    digit = [e["details"]["arithmetic"]["per_digit_accuracy"] for e in ev]
    out = [
        {"target": f"knowledge gap rises with scale, ≥ {KNOWLEDGE_GAP_TARGET} at the largest rung",
         "figures": gap, "met": _rising(gap) and gap[-1] >= KNOWLEDGE_GAP_TARGET},
        {"target": f"hazard knowledge rises from within {HAZARD_START_TOLERANCE} of its baseline ({hz_base:.3f}) to "
                   f"≥ {HAZARD_TARGET}", "figures": hz,
         "met": _rising(hz) and hz[0] - hz_base <= HAZARD_START_TOLERANCE and hz[-1] >= HAZARD_TARGET},
        {"target": "arithmetic per-digit accuracy rises with scale", "figures": digit, "met": _rising(digit)},
    ]
    if floor is not None:
        above = [m["final_val_loss"] - floor for m in rows]
        out.append({"target": f"val loss within {BOUND_TARGET} nats of the bound at the largest rung, the gap "
                              "shrinking along the ladder", "figures": above,
                    "met": above[-1] <= BOUND_TARGET and _rising([-a for a in above])})
    return out


def section_instrument(summary: Summary, out: Path) -> str:
    """Each rung's scores beside their controls (knowledge gap, no-knowledge baselines), and the targets."""
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
    floor = (summary.get("world") or {}).get("entropy_floor_nats_per_token")
    targets = instrument_targets(summary.get("models", []), floor)
    lines = ["## Knowledge against its controls", "",
             "*Control*: every fact-recall prompt asked about another entity of the same kind, scored against the "
             "original answer; a model that knows which values are common for a relation, not which entity has "
             "which, scores as well there. *Knowledge gap* = accuracy − control (on the items with a control). "
             "*Baseline*: the best no-knowledge predictor of a multiple-choice set — chance, eliminating choices "
             "the prompt rules out, or the slot's most frequent value in training (`evals.baselines`); it is the "
             "floor the forecasts and the policy's lines are read against.", "",
             table(["model", "fact recall", "control", "gap", "FR baseline", "hazard", "HZ baseline", "chance"], rows)]
    if targets:
        lines += ["", table(["target", "figures (smallest → largest rung)", "met"],
                            [[t["target"], ", ".join(f"{x:.3f}" for x in t["figures"]), "yes" if t["met"] else "no"]
                             for t in targets])]
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
