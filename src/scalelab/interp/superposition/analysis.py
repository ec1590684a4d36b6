"""Reading a trained toy model's W: which features it represents, their geometry, their dimensionality.

Everything here is a pure function of a weight matrix W [m, n] (column i is feature i's direction), so
the labels the experiments report come from the trained weights and can be checked on hand-built ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

POLYGON_NAMES = {3: "triangle", 4: "square", 5: "pentagon", 6: "hexagon"}
PHASES = ("not represented", "dedicated dimension", "superposition", "other")


def feature_norms(W: np.ndarray) -> np.ndarray:
    """‖W_i‖ per feature, [n]."""
    return np.linalg.norm(W, axis=0)


def represented(W: np.ndarray, threshold: float) -> list[int]:
    """Indices of the features whose column norm exceeds `threshold`."""
    return [int(i) for i in np.flatnonzero(feature_norms(W) > threshold)]


def feature_dimensionality(W: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)² per feature (the paper's 'fraction of a dimension').

    The j = i term of the sum is ‖W_i‖², so D_i ≤ 1, with equality when no other feature overlaps W_i;
    a feature with (numerically) zero norm occupies no dimension and gets 0.
    """
    norms = feature_norms(W)
    unit = W / np.maximum(norms, eps)
    denom = ((unit.T @ W) ** 2).sum(axis=1)
    return np.where(norms > eps, norms**2 / np.maximum(denom, eps**2), 0.0)


def dimensions_per_feature(W: np.ndarray) -> float:
    """m / ‖W‖_F²: hidden dimensions per (norm-weighted) embedded feature, the paper's line."""
    return float(W.shape[0] / max(float((W**2).sum()), 1e-12))


def _cosines(W: np.ndarray, idx: list[int]) -> np.ndarray:
    cols = W[:, idx]
    unit = cols / np.linalg.norm(cols, axis=0, keepdims=True)
    return unit.T @ unit


def _antipodal_pairs(cos: np.ndarray, idx: list[int], limit: float) -> list[tuple[int, int]]:
    """Greedy matching of features into pairs with cosine below −limit, most opposed first."""
    order = sorted((cos[a, b], a, b) for a in range(len(idx)) for b in range(a + 1, len(idx)))
    used: set[int] = set()
    pairs = []
    for c, a, b in order:
        if c >= -limit:
            break
        if a not in used and b not in used:
            used.update((a, b))
            pairs.append((idx[a], idx[b]))
    return pairs


def neighbour_gaps_deg(W: np.ndarray, idx: list[int]) -> list[float]:
    """Angles between angularly adjacent represented features in 2D, going once round the circle."""
    if len(idx) < 2:
        return []
    angles = np.sort(np.degrees(np.arctan2(W[1, idx], W[0, idx])) % 360.0)
    return [float(g) for g in np.diff(np.append(angles, angles[0] + 360.0))]


def geometry_2d(W: np.ndarray, *, threshold: float, antipodal_cos: float, orthogonal_cos: float,
                polygon_tol_deg: float) -> dict[str, Any]:
    """Name the arrangement of the represented columns of a 2-row W.

    In order: none / single feature; an orthogonal pair; antipodal pair(s) (every represented feature
    matched with an opposite one, the paper's name even when two pairs happen to form a square); a
    regular k-gon (every neighbour gap within `polygon_tol_deg` of 360°/k); else a description.
    """
    if W.shape[0] != 2:
        raise ValueError(f"geometry_2d needs 2 hidden dimensions, W has {W.shape[0]}")
    idx = represented(W, threshold)
    k = len(idx)
    gaps = neighbour_gaps_deg(W, idx)
    out: dict[str, Any] = {"represented": idx, "neighbour_gaps_deg": [round(g, 2) for g in gaps], "pairs": []}
    if k == 0:
        return {**out, "label": "none"}
    if k == 1:
        return {**out, "label": "single feature"}
    cos = _cosines(W, idx)
    pairs = _antipodal_pairs(cos, idx, antipodal_cos)
    out["pairs"] = [list(p) for p in pairs]
    if k == 2 and abs(cos[0, 1]) < orthogonal_cos:
        return {**out, "label": "orthogonal pair"}
    if 2 * len(pairs) == k:
        return {**out, "label": "antipodal pair" if k == 2 else "antipodal pairs"}
    if k >= 3 and max(abs(g - 360.0 / k) for g in gaps) < polygon_tol_deg:
        return {**out, "label": POLYGON_NAMES.get(k, f"regular {k}-gon")}
    if pairs:
        return {**out, "label": f"{len(pairs)} antipodal pair(s) + {k - 2 * len(pairs)} other"}
    return {**out, "label": f"irregular ({k} features)"}


def phase_of(W: np.ndarray, *, threshold: float, antipodal_cos: float, orthogonal_cos: float) -> str:
    """The paper's phase of the second feature of a 2-feature model.

    ‖W_2‖ small → not represented; both represented and W_1·W_2 ≈ −‖W_1‖‖W_2‖ → superposition;
    W_2 represented alone or orthogonal to W_1 → dedicated dimension; anything else → other (counted,
    so a state the paper's three phases do not cover shows up instead of being filed as one of them).
    """
    n1, n2 = feature_norms(W)[:2]
    if n2 <= threshold:
        return "not represented"
    if n1 <= threshold:
        return "dedicated dimension"
    cos = float(W[:, 0] @ W[:, 1] / (n1 * n2))
    if cos < -antipodal_cos:
        return "superposition"
    if abs(cos) < orthogonal_cos:
        return "dedicated dimension"
    return "other"


def near_sticky(dims: np.ndarray, fractions: tuple[float, ...], window: float) -> tuple[np.ndarray, np.ndarray]:
    """Per dimensionality: whether it lies within `window` of a sticky fraction, and the nearest one's index."""
    dist = np.abs(np.asarray(dims, dtype=float).reshape(-1, 1) - np.asarray(fractions)[None, :])
    if dist.shape[0] == 0:
        return np.zeros(0, bool), np.zeros(0, int)
    return dist.min(axis=1) <= window, dist.argmin(axis=1)


def sticky_stats(dims: np.ndarray, fractions: tuple[float, ...], window: float) -> dict[str, Any]:
    """How many dimensionalities sit within `window` of a sticky fraction, and a chance baseline.

    `chance` is the share of [0, 1] those windows cover: what a dimensionality spread uniformly would
    score, so the measured fraction can be read against it.
    """
    near, nearest = near_sticky(dims, fractions, window)
    per = {frac_name(f): int(((nearest == j) & near).sum()) for j, f in enumerate(fractions)}
    chance = float(near_sticky(np.linspace(0.0, 1.0, 100_001), fractions, window)[0].mean())
    return {"features": int(near.size), "within": int(near.sum()),
            "fraction": float(near.mean()) if near.size else math.nan, "per_fraction": per,
            "window": window, "chance": round(chance, 4)}


def frac_name(f: float) -> str:
    """'3/8' for 0.375: the smallest denominator up to 12 that writes f exactly, else f itself."""
    for den in range(1, 13):
        num = round(f * den)
        if abs(num / den - f) < 1e-9:
            return f"{num}/{den}" if den > 1 else str(num)
    return f"{f:g}"
