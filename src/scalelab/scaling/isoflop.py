"""Chinchilla approach 2: the minimum of each IsoFLOP profile, then N_opt ∝ C^a and D_opt ∝ C^b.

Hoffmann et al. (2022, "Training Compute-Optimal Large Language Models", §3.2): train several model
sizes at each fixed compute budget, fit a parabola of final loss in log N to each budget's runs and take
its vertex as N_opt(C); then fit N_opt = k_N·C^a (a straight line in log-log). We fit a second parabola
in log D for D_opt(C) rather than setting D_opt = C/(6·N_opt), so the result does not depend on which
FLOP formula produced C (6ND, or `model.flops` with its attention and lm_head terms).

Intervals are bootstrap percentile intervals: within each profile the runs are resampled with
replacement (stratified, so every budget keeps its runs), each parabola is refitted, and the power laws
are refitted to the new vertices. This propagates each run's loss noise through the vertex into a and
b. With only a few budgets it does not see scatter of the vertices around the line beyond that noise;
the regression standard errors of a line through 3 points (1 degree of freedom) would be far wider and
no more trustworthy, which is why they are not used.

Runs are grouped into profiles by their `budget` field, or, where it is missing, by their compute C,
merging values within `budget_rtol` of each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.scaling.bootstrap import check_level, percentile_interval
from scalelab.scaling.runs import Exclusion, ParamKind, Run, require_enough, select_runs
from scalelab.scaling.serialize import json_result

MIN_DISTINCT_SIZES = 3  # a parabola's three coefficients


@json_result("isoflop_profile")
@dataclass(frozen=True)
class IsoFLOPProfile:
    """One budget's runs and the vertex of their loss parabola."""

    budget: float
    n_runs: int
    N_opt: float
    D_opt: float
    loss_min: float
    interior: bool  # the vertex lies inside the sampled sizes; if not, N_opt is an extrapolation


@json_result("isoflop_fit")
@dataclass(frozen=True)
class IsoFLOPFit:
    """N_opt(C) = N_coef·C^a and D_opt(C) = D_coef·C^b, fitted to the IsoFLOP vertices."""

    a: float
    b: float
    N_coef: float
    D_coef: float
    intervals: dict[str, tuple[float, float]]
    level: float
    profiles: tuple[IsoFLOPProfile, ...]
    skipped_profiles: tuple[str, ...]  # budgets left out of the power laws, with the reason
    param_kind: str
    excluded: tuple[Exclusion, ...]
    samples: tuple[tuple[float, ...], ...]  # (a, ln N_coef, b, ln D_coef) per bootstrap refit

    def N_opt(self, C: Any) -> Any:
        return self.N_coef * np.asarray(C, dtype=float) ** self.a

    def D_opt(self, C: Any) -> Any:
        return self.D_coef * np.asarray(C, dtype=float) ** self.b


def group_profiles(runs: list[Run], budget_rtol: float = 0.1) -> list[tuple[float, list[Run]]]:
    """Runs grouped by budget (or compute C): [(geometric-mean budget, runs)], smallest budget first."""
    keyed = sorted((((r.budget if r.budget is not None else r.compute), r) for r in runs), key=lambda kr: kr[0])
    groups: list[list[tuple[float, Run]]] = []
    for key, run in keyed:
        if groups and key <= groups[-1][0][0] * (1.0 + budget_rtol):
            groups[-1].append((key, run))
        else:
            groups.append([(key, run)])
    return [(float(np.exp(np.mean(np.log([k for k, _ in g])))), [r for _, r in g]) for g in groups]


def _vertex(log_x: np.ndarray, loss: np.ndarray) -> tuple[float, float] | None:
    """(argmin ln x, min loss) of the least-squares parabola, or None if it opens downwards."""
    c2, c1, c0 = np.polyfit(log_x, loss, 2)
    if not c2 > 0:
        return None
    x = -c1 / (2.0 * c2)
    return float(x), float(c0 + c1 * x + c2 * x * x)


def _profile_vertices(log_n: np.ndarray, log_d: np.ndarray, loss: np.ndarray) -> tuple[float, float, float] | None:
    vn, vd = _vertex(log_n, loss), _vertex(log_d, loss)
    if vn is None or vd is None:
        return None
    return vn[0], vd[0], vn[1]


def _power_laws(log_c: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> tuple[float, float, float, float]:
    a, ln_kn = np.polyfit(log_c, log_n, 1)
    b, ln_kd = np.polyfit(log_c, log_d, 1)
    return float(a), float(ln_kn), float(b), float(ln_kd)


def fit_isoflop(runs: Iterable[Run | Mapping[str, Any]], *, param_kind: ParamKind = "total",
                max_loss: float | None = None, budget_rtol: float = 0.1, n_bootstrap: int = 500,
                level: float = 0.95, seed: int = 0) -> IsoFLOPFit:
    """Approach 2: parabola vertex per IsoFLOP profile, then log-log lines for N_opt(C) and D_opt(C)."""
    check_level(level)
    kept, excluded = select_runs(runs, max_loss=max_loss)
    profiles: list[IsoFLOPProfile] = []
    data: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
    skipped: list[str] = []
    for budget, group in group_profiles(kept, budget_rtol):
        log_n = np.log([r.n_params(param_kind) for r in group])
        log_d = np.log([r.D for r in group])
        loss = np.array([r.loss for r in group])
        n_sizes = len(np.unique(np.round(log_n, 9)))
        if n_sizes <= MIN_DISTINCT_SIZES:
            skipped.append(f"C={budget:.3g}: {n_sizes} distinct sizes, a parabola needs at least "
                           f"{MIN_DISTINCT_SIZES + 1}")
            continue
        vertex = _profile_vertices(log_n, log_d, loss)
        if vertex is None:
            skipped.append(f"C={budget:.3g}: loss is not convex in log N or log D, so there is no minimum")
            continue
        ln_opt, ld_opt, loss_min = vertex
        interior = bool(log_n.min() <= ln_opt <= log_n.max() and log_d.min() <= ld_opt <= log_d.max())
        profiles.append(IsoFLOPProfile(budget, len(group), float(np.exp(ln_opt)), float(np.exp(ld_opt)),
                                       loss_min, interior))
        data.append((budget, log_n, log_d, loss))
    skipped_note = f" [skipped: {'; '.join(skipped)}]" if skipped else ""
    require_enough(len(profiles), 2, f"approach 2 (N_opt ∝ C^a through IsoFLOP minima){skipped_note}", excluded,
                   unit="IsoFLOP profiles with a minimum")
    log_c = np.log([p.budget for p in profiles])
    point = _power_laws(log_c, np.log([p.N_opt for p in profiles]), np.log([p.D_opt for p in profiles]))
    samples = _bootstrap(data, log_c, n_bootstrap, seed)
    s = np.asarray(samples, dtype=float).reshape(-1, 4)
    intervals = {
        "a": percentile_interval(s[:, 0], level), "b": percentile_interval(s[:, 2], level),
        "N_coef": tuple(np.exp(percentile_interval(s[:, 1], level))),
        "D_coef": tuple(np.exp(percentile_interval(s[:, 3], level))),
    }
    return IsoFLOPFit(
        a=point[0], b=point[2], N_coef=float(np.exp(point[1])), D_coef=float(np.exp(point[3])),
        intervals=intervals, level=level, profiles=tuple(profiles), skipped_profiles=tuple(skipped),
        param_kind=param_kind, excluded=excluded, samples=tuple(samples),
    )


def _bootstrap(data: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]], log_c: np.ndarray, n_boot: int,
               seed: int, max_tries: int = 100) -> list[tuple[float, float, float, float]]:
    """Stratified refits; a profile resample without a minimum is drawn again (up to `max_tries`)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_boot):
        ln_opt, ld_opt = [], []
        for _, log_n, log_d, loss in data:
            for _ in range(max_tries):
                idx = rng.integers(0, len(loss), size=len(loss))
                if len(np.unique(np.round(log_n[idx], 9))) < MIN_DISTINCT_SIZES:
                    continue
                vertex = _profile_vertices(log_n[idx], log_d[idx], loss[idx])
                if vertex is not None:
                    break
            else:
                break  # this profile gave no minimum in max_tries draws: drop the whole replicate
            ln_opt.append(vertex[0])
            ld_opt.append(vertex[1])
        if len(ln_opt) == len(data):
            samples.append(_power_laws(log_c, np.array(ln_opt), np.array(ld_opt)))
    return samples
