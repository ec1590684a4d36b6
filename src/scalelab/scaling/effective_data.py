"""The effective-data law of data-constrained scaling (Muennighoff et al. 2023), fitted with intervals.

Repeating U unique tokens for R repetitions beyond the first epoch is worth

    D' = U + U·R*·(1 − exp(−R/R*))

fresh tokens: the first repetitions almost as much as new data, later ones less and less, and never more than
U·(1 + R*) in all. R* is the half-life-like constant; the paper fits R* ≈ 15.4 on C4 (and finds ~4 epochs
nearly free). At a fixed model size the loss follows L(D) = E + B/D^β on fresh data, so the fit has two
stages: (1) E, B, β from the fresh-data runs (least squares on log-loss, profiled over E: `fit_fresh`),
(2) R* from the repeated runs, the one value that makes L(D'(U, R; R*)) match their losses (Huber on
log-loss over log R* ∈ [`R_MIN`, `R_MAX`]: a grid, then bounded Brent). An R* at the upper bound
means the repeated runs lost nothing measurable against fresh data. Intervals resample the fresh and the
repeated runs (each arm with replacement) and refit both stages (`bootstrap.resamples`).

Each repeated run's own effective data (the fresh-data law inverted at its loss) is reported beside, so the
fitted curve can be read against the points that made it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from scalelab.errors import InputError
from scalelab.scaling.bootstrap import percentile_interval, resamples
from scalelab.scaling.lse_fit import HUBER_DELTA, huber

R_MIN, R_MAX = 0.05, 1e4
PAPER_R_STAR = 15.4  # Muennighoff et al. 2023, the fitted R*_D on C4


def effective_data(unique: float, repetitions: float | np.ndarray, r_star: float) -> float | np.ndarray:
    """D' = U + U·R*·(1 − e^(−R/R*)) for R repetitions (epochs − 1) of U unique tokens."""
    return unique + unique * r_star * (1.0 - np.exp(-np.asarray(repetitions) / r_star))


@dataclass(frozen=True)
class FreshLaw:
    """L(D) = E + B/D^β at one model size, fitted on fresh-data runs."""

    E: float
    B: float
    beta: float

    def loss(self, d: float | np.ndarray) -> float | np.ndarray:
        return self.E + self.B / np.asarray(d, dtype=float) ** self.beta

    def inverse(self, loss: float) -> float:
        """The fresh tokens that reach `loss` (inf at or below E)."""
        return math.inf if loss <= self.E else (self.B / (loss - self.E)) ** (1 / self.beta)


def fit_fresh(tokens: Sequence[float], losses: Sequence[float]) -> FreshLaw:
    """E, B, β from fresh-data runs of one model size (≥ 3 distinct token counts).

    Profiled over E: for a given floor, log(L − E) = log B − β·log D is a straight line (closed form), so the
    fit scans E over [0, min L) on a grid, keeps the floor whose line gives the smallest squared log-loss
    residuals, and refines it by bounded Brent. Milliseconds per fit, which the bootstrap needs; L-BFGS from
    a grid (`lse_fit`) took seconds on these few, nearly collinear points.
    """
    if len(set(tokens)) < 3:
        raise InputError(f"the fresh-data law needs runs at ≥ 3 token counts; got {sorted(set(tokens))}")
    log_d = np.log(np.asarray(tokens, dtype=float))
    y = np.asarray(losses, dtype=float)
    top = float(y.min()) * (1 - 1e-6)

    def line(e: float) -> tuple[float, float, float]:
        slope, intercept = np.polyfit(log_d, np.log(y - e), 1)
        pred = e + np.exp(intercept + slope * log_d)
        return float(np.sum((np.log(pred) - np.log(y)) ** 2)), float(np.exp(intercept)), float(-slope)

    grid = np.linspace(0.0, top, 200, endpoint=False)
    best = float(grid[int(np.argmin([line(e)[0] for e in grid]))])
    step = top / 200
    res = minimize_scalar(lambda e: line(e)[0], bounds=(max(0.0, best - step), min(top, best + step)),
                          method="bounded", options={"xatol": 1e-9})
    e = float(res.x) if res.fun <= line(best)[0] else best
    _, b, beta = line(e)
    return FreshLaw(E=e, B=b, beta=beta)


def fit_r_star(law: FreshLaw, unique: Sequence[float], repetitions: Sequence[float], losses: Sequence[float]) -> float:
    """The R* that makes the fresh law at D' match the repeated runs' losses (see the module docstring)."""
    u, r, y = (np.asarray(v, dtype=float) for v in (unique, repetitions, losses))

    def objective(log_r: float) -> float:
        pred = law.loss(effective_data(u, r, math.exp(log_r)))  # type: ignore[arg-type]
        return float(huber(np.log(pred) - np.log(y), HUBER_DELTA).sum())

    grid = np.linspace(math.log(R_MIN), math.log(R_MAX), 121)
    best = grid[int(np.argmin([objective(g) for g in grid]))]
    lo, hi = max(best - 0.1, grid[0]), min(best + 0.1, grid[-1])
    res = minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x if res.fun <= objective(best) else best))


def fit_effective_data(fresh: Sequence[dict[str, Any]], repeated: Sequence[dict[str, Any]], n_boot: int,
                       seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Fresh runs: `tokens`, `loss`. Repeated runs: `unique`, `epochs`, `loss`. The law, R* with its interval,
    and each repeated run's effective data."""
    law = fit_fresh([f["tokens"] for f in fresh], [f["loss"] for f in fresh])

    def r_star_of(rep: Sequence[dict[str, Any]], fresh_law: FreshLaw) -> float:
        return fit_r_star(fresh_law, [x["unique"] for x in rep], [x["epochs"] - 1 for x in rep],
                          [x["loss"] for x in rep])

    r_star = r_star_of(repeated, law)
    samples = []
    fresh_idx = resamples(len(fresh), n_boot, seed, min_unique=min(3, len(fresh)))
    rep_idx = resamples(len(repeated), n_boot, seed + 1, min_unique=1)
    for fi, ri in zip(fresh_idx, rep_idx, strict=True):
        try:
            boot_law = fit_fresh([fresh[i]["tokens"] for i in fi], [fresh[i]["loss"] for i in fi])
            samples.append(r_star_of([repeated[i] for i in ri], boot_law))
        except (InputError, FloatingPointError):
            continue
    ci = percentile_interval(np.array(samples), level) if samples else (float("nan"), float("nan"))
    per_run = [{"epochs": x["epochs"], "unique": x["unique"], "loss": x["loss"],
                "effective_tokens": law.inverse(x["loss"]),
                "effective_fraction": law.inverse(x["loss"]) / (x["unique"] * x["epochs"])} for x in repeated]
    return {"law": {"E": law.E, "B": law.B, "beta": law.beta}, "r_star": r_star, "r_star_ci": list(ci),
            "r_star_at_bound": r_star >= R_MAX * 0.99, "r_star_bounds": [R_MIN, R_MAX], "paper_r_star": PAPER_R_STAR,
            "n_bootstrap": len(samples), "level": level, "repeated": per_run}
