"""The estimator behind Chinchilla approach 3 and the Kaplan-style fits: Huber loss on log-loss, L-BFGS.

A law that is a sum of power laws plus a floor,

    L̂ = A_1/x_1^α_1 + … + A_k/x_k^α_k + E,

is fitted in log space with A_j = exp(a_j), E = exp(e), so that log L̂ = LSE(a_1 − α_1·log x_1, …, e)
(LSE = log-sum-exp). Hoffmann et al. (2022, "Training Compute-Optimal Large Language Models", §3.3 and
App. D.2) minimise Σ_i Huber_δ(log L̂_i − log L_i) with δ = 1e-3 by L-BFGS from a grid of
initialisations and keep the best; Besiroglu et al. (2024, "Chinchilla Scaling: A replication attempt")
show that the optimiser must be run to a tight tolerance or the fit stops short and its intervals are
too narrow, so the tolerances below are near machine precision. The log parametrisation keeps A, E > 0
and makes a multiplicative error in L an additive residual; the Huber loss down-weights outlier runs.

Speed: the objective is evaluated on the whole grid at once and L-BFGS starts only from the
`n_starts` best grid points (plus any starts the caller adds). Starting from every grid point, as
Hoffmann et al. do, finds the same optimum on our tests and costs hundreds of times more. Bootstrap
refits start only from the full-data optimum (`n_starts=0, extra_starts=[theta]`): a resample's
optimum lies near it, adding the best grid point as a second start never found a lower objective in
our synthetic checks, and it made each refit ~4× slower.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

HUBER_DELTA = 1e-3


def _terms(theta: np.ndarray, log_x: np.ndarray, with_floor: bool) -> np.ndarray:
    """(..., n, m) log-terms a_j − α_j·log x_j (and e) for parameters theta (..., P)."""
    k = log_x.shape[1]
    a, alpha = theta[..., :k], theta[..., k: 2 * k]
    z = a[..., None, :] - alpha[..., None, :] * log_x
    if with_floor:
        e = np.broadcast_to(theta[..., None, 2 * k: 2 * k + 1], (*z.shape[:-1], 1))
        z = np.concatenate([z, e], axis=-1)
    return z


def _log_sum_exp(z: np.ndarray) -> np.ndarray:
    """log Σ exp over the last axis; by hand because scipy's costs ~20× more on arrays this small."""
    top = z.max(axis=-1, keepdims=True)
    return np.log(np.exp(z - top).sum(axis=-1)) + top[..., 0]


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber_δ(r): quadratic inside ±δ, linear outside."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _objective(theta: np.ndarray, log_x: np.ndarray, log_y: np.ndarray, delta: float, with_floor: bool,
               ) -> tuple[float, np.ndarray]:
    """Σ Huber_δ(r)/δ and its gradient; dividing by δ keeps values O(n) so tolerances are meaningful."""
    k = log_x.shape[1]
    z = _terms(theta, log_x, with_floor)
    top = z.max(axis=-1, keepdims=True)
    ez = np.exp(z - top)
    total = ez.sum(axis=-1)
    r = np.log(total) + top[:, 0] - log_y
    w = ez / total[:, None]
    psi = np.clip(r, -delta, delta) / delta
    pw = psi[:, None] * w
    grad = np.empty_like(theta)
    grad[:k] = pw[:, :k].sum(axis=0)
    grad[k: 2 * k] = -(pw[:, :k] * log_x).sum(axis=0)
    if with_floor:
        grad[2 * k] = pw[:, k].sum()
    return float(huber(r, delta).sum() / delta), grad


def make_grid(log_coef: Sequence[float], exponent: Sequence[float], log_floor: Sequence[float], k: int,
              with_floor: bool) -> np.ndarray:
    """All combinations (a_1..a_k, α_1..α_k[, e]) of the given per-parameter values."""
    axes = [log_coef] * k + [exponent] * k + ([log_floor] if with_floor else [])
    return np.array(list(itertools.product(*axes)), dtype=float)


def fit_lse(log_x: np.ndarray, log_y: np.ndarray, *, with_floor: bool, grid: np.ndarray,
            delta: float = HUBER_DELTA, n_starts: int = 16, extra_starts: Sequence[np.ndarray] = (),
            ) -> tuple[np.ndarray, float]:
    """Best (theta, Σ Huber_δ) over L-BFGS runs from the best grid points and `extra_starts`.

    theta is (a_1..a_k, α_1..α_k[, e]) for log_x of shape (n, k) and log_y = log L of shape (n,).
    """
    log_x = np.asarray(log_x, dtype=float)
    log_y = np.asarray(log_y, dtype=float)
    starts = [np.asarray(s, dtype=float) for s in extra_starts]
    if n_starts > 0:
        grid_obj = huber(_log_sum_exp(_terms(grid, log_x, with_floor)) - log_y, delta).sum(axis=-1)
        starts += [grid[i] for i in np.argsort(grid_obj)[:n_starts]]
    best_theta, best_obj = None, np.inf
    for x0 in starts:
        res = minimize(_objective, x0, args=(log_x, log_y, delta, with_floor), jac=True, method="L-BFGS-B",
                       options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
        if np.all(np.isfinite(res.x)) and res.fun < best_obj:
            best_theta, best_obj = res.x, float(res.fun)
    if best_theta is None:
        raise FloatingPointError("every L-BFGS start diverged; check the runs for extreme values")
    return best_theta, best_obj * delta
