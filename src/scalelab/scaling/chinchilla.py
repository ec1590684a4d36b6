"""Chinchilla approach 3: fit L(N, D) = E + A/N^α + B/D^β to every run at once, with bootstrap intervals.

The law and its fitting procedure are Hoffmann et al. (2022, "Training Compute-Optimal Large Language
Models", eq. 2, §3.3, App. D.2), as corrected by Besiroglu et al. (2024, "Chinchilla Scaling: A
replication attempt"): Huber loss (δ = 1e-3) on log-loss residuals in the log-sum-exp parametrisation,
L-BFGS from a grid of initialisations (see `lse_fit`), and bootstrap intervals on every parameter
(`bootstrap`). Minimising E + A/N^α + B/D^β under C = 6·N·D gives the compute-optimal allocation
(Hoffmann et al. eq. 4):

    N_opt(C) = G·(C/6)^a,   D_opt(C) = G⁻¹·(C/6)^b,   G = (αA / βB)^(1/(α+β)),   a = β/(α+β), b = α/(α+β).

N is total parameters by default; `param_kind="non_embedding"` fits Kaplan's count instead (Pearce &
Song 2024, "Reconciling Kaplan and Chinchilla Scaling Laws", show that this choice alone moves the
fitted exponents at small scale, so a result always records which N it used).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.scaling.bootstrap import check_level, percentile_interval, resamples
from scalelab.scaling.lse_fit import HUBER_DELTA, fit_lse, make_grid
from scalelab.scaling.runs import Exclusion, ParamKind, Run, require_enough, select_runs
from scalelab.scaling.serialize import json_result

PARAM_NAMES = ("E", "A", "B", "alpha", "beta")
# Hoffmann et al. (2022) App. D.2: the initialisation grid of approach 3.
GRID = make_grid(log_coef=np.arange(0.0, 26.0, 5.0), exponent=np.arange(0.0, 2.01, 0.5),
                 log_floor=np.arange(-1.0, 1.01, 0.5), k=2, with_floor=True)


@json_result("chinchilla_fit")
@dataclass(frozen=True)
class ChinchillaFit:
    """Fitted E, A, B, α, β with percentile-bootstrap intervals; `samples` holds the bootstrap refits."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    intervals: dict[str, tuple[float, float]]
    level: float
    huber_loss: float  # Σ Huber_δ(log L̂ − log L) at the optimum: the objective Hoffmann et al. minimise
    rms_log_residual: float  # ≈ the typical relative error of the fit on its own runs
    n_runs: int
    param_kind: str
    excluded: tuple[Exclusion, ...]
    samples: tuple[tuple[float, ...], ...]  # (E, A, B, alpha, beta) per bootstrap refit

    def predict(self, N: Any, D: Any) -> Any:
        """L(N, D) at the fitted parameters (scalars or numpy arrays)."""
        return _law(np.asarray(N, dtype=float), np.asarray(D, dtype=float), self.E, self.A, self.B,
                    self.alpha, self.beta)

    def predict_interval(self, N: Any, D: Any, level: float | None = None) -> tuple[Any, Any]:
        """Percentile interval of L(N, D) over the bootstrap refits (a confidence band on the law)."""
        s = np.asarray(self.samples, dtype=float)
        n, d = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        preds = _law(n[None, ...], d[None, ...], *(s[:, i].reshape((-1,) + (1,) * n.ndim) for i in range(5)))
        tail = 50.0 * (1.0 - (level or self.level))
        lo, hi = np.nanpercentile(preds, [tail, 100.0 - tail], axis=0)
        return lo, hi

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C^a."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt ∝ C^b (a + b = 1 under C = 6ND)."""
        return self.alpha / (self.alpha + self.beta)

    def compute_optimal(self, C: Any) -> tuple[Any, Any]:
        """(N_opt, D_opt) minimising the fitted loss at compute C = 6·N·D (Hoffmann et al. eq. 4)."""
        return _compute_optimal(np.asarray(C, dtype=float), self.A, self.B, self.alpha, self.beta)

    def optimal_loss(self, C: Any) -> Any:
        """The loss of the compute-optimal model at compute C."""
        n, d = self.compute_optimal(C)
        return self.predict(n, d)

    def optimal_loss_samples(self, C: float) -> np.ndarray:
        """The compute-optimal loss at C under each bootstrap refit (for propagating uncertainty)."""
        E, A, B, alpha, beta = np.asarray(self.samples, dtype=float).reshape(-1, 5).T
        n, d = _compute_optimal(np.asarray(C, dtype=float), A, B, alpha, beta)
        return _law(n, d, E, A, B, alpha, beta)


def _law(N: np.ndarray, D: np.ndarray, E: Any, A: Any, B: Any, alpha: Any, beta: Any) -> Any:
    return E + A / N ** alpha + B / D ** beta


def _compute_optimal(C: np.ndarray, A: Any, B: Any, alpha: Any, beta: Any) -> tuple[Any, Any]:
    g = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    c6 = C / 6.0
    return g * c6 ** (beta / (alpha + beta)), c6 ** (alpha / (alpha + beta)) / g


def _params(theta: np.ndarray) -> tuple[float, ...]:
    a, b, alpha, beta, e = theta
    return (float(np.exp(e)), float(np.exp(a)), float(np.exp(b)), float(alpha), float(beta))


def fit_chinchilla(runs: Iterable[Run | Mapping[str, Any]], *, param_kind: ParamKind = "total",
                   max_loss: float | None = None, n_bootstrap: int = 200, level: float = 0.95, seed: int = 0,
                   delta: float = HUBER_DELTA, n_starts: int = 16) -> ChinchillaFit:
    """Fit L(N, D) = E + A/N^α + B/D^β (approach 3) to the non-hold-out, non-diverged runs.

    Intervals are `level` percentile intervals over `n_bootstrap` refits on runs resampled with
    replacement (each refit starts from the full-data optimum; see `lse_fit`).
    """
    check_level(level)
    kept, excluded = select_runs(runs, max_loss=max_loss)
    require_enough(len(kept), len(PARAM_NAMES), "Chinchilla approach 3 (E, A, B, alpha, beta)", excluded)
    log_x = np.log([[r.n_params(param_kind), r.D] for r in kept])
    log_y = np.log([r.loss for r in kept])
    theta, huber_loss = fit_lse(log_x, log_y, with_floor=True, grid=GRID, delta=delta, n_starts=n_starts)
    samples = []
    for idx in resamples(len(kept), n_bootstrap, seed, min_unique=len(PARAM_NAMES)):
        try:
            boot, _ = fit_lse(log_x[idx], log_y[idx], with_floor=True, grid=GRID, delta=delta, n_starts=0,
                              extra_starts=[theta])
        except FloatingPointError:
            continue  # a refit that diverged from every start says nothing; the interval uses the rest
        samples.append(_params(boot))
    params = _params(theta)
    s = np.asarray(samples, dtype=float).reshape(-1, len(PARAM_NAMES))
    intervals = {name: percentile_interval(s[:, i], level) for i, name in enumerate(PARAM_NAMES)}
    intervals["a"] = percentile_interval(s[:, 4] / (s[:, 3] + s[:, 4]), level)
    intervals["b"] = percentile_interval(s[:, 3] / (s[:, 3] + s[:, 4]), level)
    pred = _law(np.exp(log_x[:, 0]), np.exp(log_x[:, 1]), *params)
    return ChinchillaFit(
        *params, intervals=intervals, level=level, huber_loss=huber_loss,
        rms_log_residual=float(np.sqrt(np.mean((np.log(pred) - log_y) ** 2))), n_runs=len(kept),
        param_kind=param_kind, excluded=excluded, samples=tuple(samples),
    )
