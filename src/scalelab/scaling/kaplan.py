"""Single-variable scaling laws in the style of Kaplan et al.: L(X) = E + A/X^α, X one of N, D or C.

Kaplan et al. (2020, "Scaling Laws for Neural Language Models", eqs. 1.1–1.3) fit L(N), L(D) and
L(C_min) as pure power laws, (X_c/X)^α_X, i.e. A = X_c^α and no floor; later work (Henighan et al. 2020;
Hoffmann et al. 2022) adds the irreducible term E. Both are offered: `fit_floor=False` fixes E = 0.
The estimator is the same Huber-on-log-loss L-BFGS fit as Chinchilla approach 3 (`lse_fit`), with
bootstrap intervals.

Which runs to pass is the caller's choice and matters: Kaplan's L(N) is the loss of models trained
near convergence (data not the bottleneck), L(D) that of large models with early stopping, and L(C)
the lower envelope of all runs at each compute. `lower_envelope=True` keeps, for each distinct value of
X, only the lowest loss, which turns a sweep's table into that envelope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from scalelab.scaling.bootstrap import check_level, percentile_interval, resamples
from scalelab.scaling.lse_fit import HUBER_DELTA, fit_lse, make_grid
from scalelab.scaling.runs import Exclusion, ParamKind, Run, ScalingFitError, require_enough, select_runs
from scalelab.scaling.serialize import json_result

Variable = Literal["N", "D", "C"]
VARIABLES = ("N", "D", "C")
_LOG_COEF = np.arange(0.0, 25.1, 2.5)
_EXPONENT = np.array([0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0])
_LOG_FLOOR = np.arange(-1.0, 1.51, 0.5)


@json_result("power_law_fit")
@dataclass(frozen=True)
class PowerLawFit:
    """L(X) = E + A/X^α for X = `variable`; E is 0 when the fit had no floor."""

    variable: str
    E: float
    A: float
    alpha: float
    fit_floor: bool
    intervals: dict[str, tuple[float, float]]
    level: float
    huber_loss: float
    rms_log_residual: float
    n_runs: int
    param_kind: str
    excluded: tuple[Exclusion, ...]
    samples: tuple[tuple[float, ...], ...]  # (E, A, alpha) per bootstrap refit

    def predict(self, x: Any) -> Any:
        """L at X = x (scalar or array)."""
        return self.E + self.A / np.asarray(x, dtype=float) ** self.alpha

    def predict_samples(self, x: Any) -> np.ndarray:
        """L(x) under each bootstrap refit: shape (n_samples, *shape(x))."""
        s = np.asarray(self.samples, dtype=float).reshape(-1, 3)
        xs = np.asarray(x, dtype=float)
        shape = (-1,) + (1,) * xs.ndim
        return s[:, 0].reshape(shape) + s[:, 1].reshape(shape) / xs[None, ...] ** s[:, 2].reshape(shape)

    def predict_interval(self, x: Any, level: float | None = None) -> tuple[Any, Any]:
        """Percentile interval of L(x) over the bootstrap refits."""
        preds = self.predict_samples(x)
        tail = 50.0 * (1.0 - (level or self.level))
        lo, hi = np.nanpercentile(preds, [tail, 100.0 - tail], axis=0)
        return lo, hi


def _x_value(run: Run, variable: str, param_kind: ParamKind) -> float:
    if variable == "N":
        return run.n_params(param_kind)
    if variable == "D":
        return run.D
    if variable == "C":
        return run.compute
    raise ScalingFitError(f"variable={variable!r} is unknown; use one of {', '.join(VARIABLES)}")


def _envelope(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each distinct x (to 1e-9 relative), the lowest y."""
    keys = np.round(np.log(x), 9)
    best: dict[float, int] = {}
    for i, k in enumerate(keys):
        if k not in best or y[i] < y[best[k]]:
            best[k] = i
    idx = np.array(sorted(best.values()))
    return x[idx], y[idx]


def _params(theta: np.ndarray, fit_floor: bool) -> tuple[float, float, float]:
    return (float(np.exp(theta[2])) if fit_floor else 0.0, float(np.exp(theta[0])), float(theta[1]))


def fit_power_law(runs: Iterable[Run | Mapping[str, Any]], variable: Variable = "N", *, fit_floor: bool = True,
                  lower_envelope: bool = False, param_kind: ParamKind = "total", max_loss: float | None = None,
                  n_bootstrap: int = 200, level: float = 0.95, seed: int = 0, delta: float = HUBER_DELTA,
                  ) -> PowerLawFit:
    """Fit L(X) = E + A/X^α (or A/X^α with `fit_floor=False`) with bootstrap intervals."""
    check_level(level)
    if variable not in VARIABLES:
        raise ScalingFitError(f"variable={variable!r} is unknown; use one of {', '.join(VARIABLES)}")
    kept, excluded = select_runs(runs, max_loss=max_loss)
    x = np.array([_x_value(r, variable, param_kind) for r in kept], dtype=float)
    y = np.array([r.loss for r in kept], dtype=float)
    if lower_envelope and len(x):
        x, y = _envelope(x, y)
    n_params = 3 if fit_floor else 2
    require_enough(len(x), n_params, f"L({variable}) = {'E + ' if fit_floor else ''}A/{variable}^alpha", excluded)
    log_x, log_y = np.log(x)[:, None], np.log(y)
    grid = make_grid(_LOG_COEF, _EXPONENT, _LOG_FLOOR, k=1, with_floor=fit_floor)
    theta, huber_loss = fit_lse(log_x, log_y, with_floor=fit_floor, grid=grid, delta=delta)
    samples = []
    for idx in resamples(len(x), n_bootstrap, seed, min_unique=n_params):
        try:
            boot, _ = fit_lse(log_x[idx], log_y[idx], with_floor=fit_floor, grid=grid, delta=delta, n_starts=0,
                              extra_starts=[theta])
        except FloatingPointError:
            continue
        samples.append(_params(boot, fit_floor))
    E, A, alpha = _params(theta, fit_floor)
    s = np.asarray(samples, dtype=float).reshape(-1, 3)
    intervals = {name: percentile_interval(s[:, i], level) for i, name in enumerate(("E", "A", "alpha"))}
    pred = E + A / x ** alpha
    return PowerLawFit(
        variable=variable, E=E, A=A, alpha=alpha, fit_floor=fit_floor, intervals=intervals, level=level,
        huber_loss=huber_loss, rms_log_residual=float(np.sqrt(np.mean((np.log(pred) - log_y) ** 2))),
        n_runs=len(x), param_kind=param_kind, excluded=excluded, samples=tuple(samples),
    )
