"""Capability forecasts: eval accuracy as a sigmoid in log-compute, or in loss, with bootstrap intervals.

Two ways to extrapolate an eval's accuracy to a bigger run, both a logistic curve from chance to a
ceiling:

- in log-compute, acc(C) = chance + (ceiling − chance)·σ(s·(log10 C − m)), the sigmoidal scaling of
  downstream accuracy (e.g. Owen 2024, "How predictable is language model benchmark performance?");
- in loss, acc(L) = chance + (ceiling − chance)·σ(s·(m − L)), the second step of the two-step method of
  Llama 3 (Dubey et al. 2024, §3.2.1) and AI2's model ladders (Bhagia et al. 2024, "Establishing Task
  Scaling Laws via Compute-Efficient Model Ladders"): accuracy is a sigmoid of a loss that is itself
  predictable from compute. Those papers use the task loss (NLL of the correct answer); here it is
  the model's pretraining validation loss, which every run has. To forecast from compute, the loss is
  taken from a fitted loss law — L(C) (`kaplan.fit_power_law(..., "C")`) or the compute-optimal loss
  of a Chinchilla fit — and its bootstrap samples are paired with the sigmoid's, so the interval carries
  both uncertainties.

The floor (`chance`) is fixed at the eval's no-knowledge baseline — for the world's multiple-choice sets the best
of chance, elimination and the frequency prior (`evals.baselines`), for exact-match sets 0; the ceiling is
fitted in (floor, 1] unless given.
Intervals are bootstrap percentile intervals over resampled runs: a band on the expected accuracy,
not on one run's measured score, which also has the eval's sampling noise (±sqrt(p(1−p)/n_items)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit, logit

from scalelab.scaling.bootstrap import check_level, percentile_interval, resamples
from scalelab.scaling.chinchilla import ChinchillaFit
from scalelab.scaling.kaplan import PowerLawFit
from scalelab.scaling.runs import ScalingFitError, require_enough
from scalelab.scaling.serialize import json_result

Basis = Literal["compute", "loss"]
BASES = ("compute", "loss")


@json_result("capability_fit")
@dataclass(frozen=True)
class CapabilityFit:
    """acc = chance + (ceiling − chance)·σ(slope·(x − midpoint)), x = log10 C (or −L for `basis="loss"`)."""

    eval_name: str
    basis: str
    chance: float
    ceiling: float
    midpoint: float  # log10 FLOPs (compute) or nats (loss) at which accuracy is half-way to the ceiling
    slope: float  # per decade of compute, or per nat of loss; > 0 (accuracy rises with scale)
    intervals: dict[str, tuple[float, float]]
    level: float
    n_points: int
    rms_error: float  # root-mean-square accuracy residual on the fitted points
    samples: tuple[tuple[float, ...], ...]  # (ceiling, midpoint, slope) per bootstrap refit

    def predict(self, value: Any) -> Any:
        """Expected accuracy at compute C (basis "compute") or at loss L (basis "loss")."""
        return _sigmoid(_x(value, self.basis), self.chance, self.ceiling, self.midpoint, self.slope)

    def predict_samples(self, value: Any) -> np.ndarray:
        """Accuracy under each bootstrap refit: shape (n_samples, *shape(value))."""
        s = np.asarray(self.samples, dtype=float).reshape(-1, 3)
        x = _x(value, self.basis)
        shape = (-1,) + (1,) * np.ndim(x)
        return _sigmoid(x, self.chance, s[:, 0].reshape(shape), s[:, 1].reshape(shape), s[:, 2].reshape(shape))

    def predict_paired(self, values: Any) -> np.ndarray:
        """Accuracy under the i-th bootstrap refit at the i-th value (e.g. the i-th refit of a loss law),
        so one interval carries both uncertainties; uses min(len(values), n_samples) pairs."""
        v = np.asarray(values, dtype=float).reshape(-1)
        n = min(len(v), len(self.samples))
        s = np.asarray(self.samples, dtype=float).reshape(-1, 3)[:n]
        return _sigmoid(_x(v[:n], self.basis), self.chance, s[:, 0], s[:, 1], s[:, 2])


def _x(value: Any, basis: str) -> Any:
    v = np.asarray(value, dtype=float)
    return np.log10(v) if basis == "compute" else -v


def _sigmoid(x: Any, chance: float, ceiling: Any, midpoint: Any, slope: Any) -> Any:
    return chance + (ceiling - chance) * expit(slope * (x - midpoint))


def _unpack(theta: np.ndarray, chance: float, ceiling: float | None) -> tuple[float, float, float]:
    """(ceiling, midpoint, slope) from the unconstrained (midpoint, log slope[, logit of ceiling share])."""
    top = ceiling if ceiling is not None else chance + (1.0 - chance) * float(expit(theta[2]))
    return top, float(theta[0]), float(np.exp(theta[1]))


def _fit_once(x: np.ndarray, acc: np.ndarray, chance: float, ceiling: float | None,
              starts: list[np.ndarray]) -> np.ndarray:
    def residuals(theta: np.ndarray) -> np.ndarray:
        return _sigmoid(x, chance, *_unpack(theta, chance, ceiling)) - acc

    best = min((least_squares(residuals, s, method="lm") for s in starts),
               key=lambda r: r.cost)
    return best.x


def _starts(x: np.ndarray, acc: np.ndarray, chance: float, ceiling: float | None) -> list[np.ndarray]:
    span = max(float(np.ptp(x)), 1e-6)
    share = np.clip((acc.max() - chance) / (1.0 - chance) + 0.05, 0.05, 0.99)
    out = []
    for q in (0.25, 0.5, 0.75):
        for s in (2.0, 8.0, 32.0):
            head = [float(np.quantile(x, q)), float(np.log(s / span))]
            out += [np.array(head)] if ceiling is not None else [np.array([*head, logit(share)]),
                                                                   np.array([*head, 4.0])]
    return out


def fit_capability(values: Sequence[float], accuracy: Sequence[float], *, chance: float, basis: Basis = "compute",
                   ceiling: float | None = None, eval_name: str = "", n_bootstrap: int = 200, level: float = 0.9,
                   seed: int = 0) -> CapabilityFit:
    """Fit accuracy against compute (FLOPs) or loss (nats) with a chance-floored sigmoid."""
    check_level(level)
    name = eval_name or "eval"
    if basis not in BASES:
        raise ScalingFitError(f"basis={basis!r} is unknown; use one of {', '.join(BASES)}")
    v = np.asarray(values, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    if v.shape != acc.shape or v.ndim != 1:
        raise ScalingFitError(f"{name}: give one {basis} value per accuracy (got {v.shape} and {acc.shape})")
    if not 0.0 <= chance < 1.0:
        raise ScalingFitError(f"{name}: chance={chance} must be in [0, 1) (e.g. 0.25 for 4-way multiple choice)")
    if ceiling is not None and not chance < ceiling <= 1.0:
        raise ScalingFitError(f"{name}: ceiling={ceiling} must be in (chance={chance}, 1]")
    bad = [i for i in range(len(acc)) if not (np.isfinite(acc[i]) and 0.0 <= acc[i] <= 1.0)]
    if bad:
        raise ScalingFitError(f"{name}: accuracies at positions {bad} are not in [0, 1]; drop or fix those runs")
    if not np.all(np.isfinite(v)) or (basis == "compute" and np.any(v <= 0)):
        raise ScalingFitError(f"{name}: every {basis} value must be finite{' and > 0' if basis == 'compute' else ''}")
    n_params = 2 if ceiling is not None else 3
    require_enough(len(acc), n_params, f"the {basis} sigmoid of {name}", unit="points")
    x = _x(v, basis)
    theta = _fit_once(x, acc, chance, ceiling, _starts(x, acc, chance, ceiling))
    samples = []
    for idx in resamples(len(acc), n_bootstrap, seed, min_unique=n_params):
        samples.append(_unpack(_fit_once(x[idx], acc[idx], chance, ceiling, [theta]), chance, ceiling))
    top, mid, slope = _unpack(theta, chance, ceiling)
    s = np.asarray(samples, dtype=float).reshape(-1, 3)
    intervals = {k: percentile_interval(s[:, i], level) for i, k in enumerate(("ceiling", "midpoint", "slope"))}
    rms = float(np.sqrt(np.mean((_sigmoid(x, chance, top, mid, slope) - acc) ** 2)))
    return CapabilityFit(name, basis, chance, top, mid, slope, intervals, level, len(acc), rms, tuple(samples))


@json_result("forecast")
@dataclass(frozen=True)
class Forecast:
    eval_name: str
    compute: float
    accuracy: float
    interval: tuple[float, float]
    level: float
    loss: float | None  # the loss the forecast went through (basis "loss"), else None


@json_result("forecast_table")
@dataclass(frozen=True)
class ForecastTable:
    """Capability fits by eval name, plus the loss law that maps compute to loss for loss-based fits."""

    fits: dict[str, CapabilityFit]
    loss_law: PowerLawFit | ChinchillaFit | None = None

    def forecast(self, eval_name: str, compute: float, level: float | None = None) -> Forecast:
        """Expected accuracy of `eval_name` for a (compute-optimal) run of `compute` FLOPs, with an interval."""
        if eval_name not in self.fits:
            raise ScalingFitError(f"no capability fit for eval {eval_name!r}; fitted evals: "
                                  f"{', '.join(sorted(self.fits)) or '(none)'}")
        if not compute > 0:
            raise ScalingFitError(f"compute={compute} must be a positive number of FLOPs")
        fit = self.fits[eval_name]
        level = level or fit.level
        if fit.basis == "compute":
            return Forecast(eval_name, compute, float(fit.predict(compute)),
                            percentile_interval(fit.predict_samples(compute), level), level, None)
        loss, loss_samples = self._loss_at(compute)
        # pair the i-th loss-law refit with the i-th sigmoid refit: both uncertainties in one interval
        acc = fit.predict_paired(loss_samples)
        if acc.size == 0:
            raise ScalingFitError(f"{eval_name}: the loss law or the capability fit has no bootstrap samples; "
                                  "refit with n_bootstrap > 0 to get an interval")
        return Forecast(eval_name, compute, float(fit.predict(loss)), percentile_interval(acc, level), level,
                        float(loss))

    def _loss_at(self, compute: float) -> tuple[float, np.ndarray]:
        law = self.loss_law
        if isinstance(law, ChinchillaFit):
            return float(law.optimal_loss(compute)), law.optimal_loss_samples(compute)
        if isinstance(law, PowerLawFit) and law.variable == "C":
            return float(law.predict(compute)), law.predict_samples(compute)
        raise ScalingFitError("a loss-based capability fit needs the table's loss_law: an L(C) power law "
                              "(fit_power_law(runs, 'C')) or a Chinchilla fit")


def forecast(table: ForecastTable, eval_name: str, compute: float, level: float | None = None) -> Forecast:
    """`table.forecast(eval_name, compute)`: will a run at `compute` FLOPs reach a given accuracy?"""
    return table.forecast(eval_name, compute, level)
