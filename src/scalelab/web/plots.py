"""Chart data for the zoomable plots: loss curves, IsoFLOP profiles, the fitted law against its hold-outs.

The report's PNGs (`scaling.plots`) are fixed pictures; the app draws the same quantities with uPlot so a reader
can drag to zoom and double-click to reset. A chart is plain data — a title, axis labels, whether x is
logarithmic, and series of (x, y) points drawn as lines or markers — built here from the run's `metrics.jsonl`
files and `scaling/fit.json`; `static/charts.js` turns it into a uPlot chart.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.scaling.chinchilla import ChinchillaFit
from scalelab.train.metrics import read_metrics
from scalelab.web.catalog import RunCatalog

Chart = dict[str, Any]


def _series(label: str, points: list[tuple[float, float]], *, line: bool = True, dash: bool = False,
            group: int = 0) -> dict:
    """One series; series of one `group` (a rung, a budget) share a colour."""
    pts = [[float(x), float(y)] for x, y in points if math.isfinite(x) and math.isfinite(y) and x > 0]
    return {"label": label, "points": pts, "line": line, "dash": dash, "group": group}


def _curves(rows: list[dict[str, Any]], tokens_per_step: float | None) -> tuple[list, list]:
    """(train, val) loss points against tokens; validation rows carry only their step."""
    train = [(r["tokens"], r["loss"]) for r in rows if "loss" in r and "tokens" in r]
    if tokens_per_step is None:
        last = next((r for r in reversed(rows) if "tokens" in r and r.get("step")), None)
        tokens_per_step = last["tokens"] / last["step"] if last else None
    val = [(r["step"] * tokens_per_step, r["val_loss"]) for r in rows if "val_loss" in r] if tokens_per_step else []
    return train, val


def ladder_curves(catalog: RunCatalog) -> Chart | None:
    """Training and validation loss against tokens for every ladder rung."""
    series = []
    rungs = [name for name, entry in catalog.models().items() if entry.kind == "ladder"]
    for g, name in enumerate(rungs):
        train, val = _curves(read_metrics(catalog.layout.rung(name)), None)
        if train:
            series.append(_series(f"{name} train", train, group=g))
        if val:
            series.append(_series(f"{name} val", val, dash=True, group=g))
    if not series:
        return None
    return {"id": "ladder", "title": "Ladder: loss against training tokens", "x": "tokens", "y": "loss (nats/token)",
            "xlog": True, "series": series}


def _fit(catalog: RunCatalog) -> dict[str, Any] | None:
    path = catalog.layout.fit
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def scaling_charts(catalog: RunCatalog) -> list[Chart]:
    """The sweep's curves, its IsoFLOP profiles and the fitted L(N, D) with the hold-outs (none without a fit)."""
    fit = _fit(catalog)
    if not fit or not fit.get("runs"):
        return []
    runs = fit["runs"]
    key = "params" if fit.get("param_kind") == "total" else "non_embedding_params"
    budgets = sorted({r["budget"] for r in runs})
    curves = []
    for r in runs:
        _, val = _curves(read_metrics(Path(r["dir"])), r["tokens"] / max(1, r["steps"]))
        if val:
            curves.append(_series(r["name"], val, dash=bool(r["holdout"]), group=budgets.index(r["budget"])))
    charts: list[Chart] = []
    if curves:
        charts.append({"id": "sweep", "title": "Sweep: validation loss (hold-outs dashed)", "x": "tokens",
                       "y": "loss (nats/token)", "xlog": True, "series": curves})
    iso = []
    for g, b in enumerate(budgets):
        group = sorted((r for r in runs if r["budget"] == b), key=lambda r: r[key])
        tag = "hold-out " if group[0]["holdout"] else ""
        iso.append(_series(f"{tag}C={b:.2e}", [(r[key], r["final_val_loss"]) for r in group], line=len(group) > 1,
                           group=g))
    charts.append({"id": "isoflop", "title": "IsoFLOP profiles: final loss against parameters", "x": f"N ({key})",
                   "y": "final val loss", "xlog": True, "series": iso})
    if fit.get("chinchilla"):
        charts.append(_law_chart(fit, runs, key, budgets))
    return charts


def _law_chart(fit: dict[str, Any], runs: list[dict[str, Any]], key: str, budgets: list[float]) -> Chart:
    """Measured final losses (fitted runs and hold-outs) beside the law's prediction along each budget."""
    law = ChinchillaFit.from_dict(fit["chinchilla"])  # type: ignore[attr-defined]
    series = []
    for g, b in enumerate(budgets):
        group = [r for r in runs if r["budget"] == b]
        n = np.array([r[key] for r in group], dtype=float)
        d = np.array([r["tokens"] for r in group], dtype=float)
        tag = "hold-out " if group[0]["holdout"] else ""
        series.append(_series(f"{tag}C={b:.2e} measured", list(zip(n, [r["final_val_loss"] for r in group],
                                                                     strict=True)), line=False, group=g))
        if len(group) > 1:  # D along the budget's line, interpolated in log N as the report's plot does
            coef = np.polyfit(np.log(n), np.log(d), 1)
            grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 40)
            pred = law.predict(grid, np.exp(np.polyval(coef, np.log(grid))))
            series.append(_series(f"{tag}C={b:.2e} law", list(zip(grid, pred, strict=True)), dash=bool(tag), group=g))
    return {"id": "law", "title": f"L(N, D) = E + A/N^α + B/D^β (E={law.E:.3f}, α={law.alpha:.3f}, β={law.beta:.3f})",
            "x": f"N ({key})", "y": "loss (nats/token)", "xlog": True, "series": series}


def all_charts(catalog: RunCatalog) -> list[Chart]:
    ladder = ladder_curves(catalog)
    return ([ladder] if ladder else []) + scaling_charts(catalog)
