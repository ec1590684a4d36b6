"""The case-resampling bootstrap every fit uses for its confidence intervals.

Resampling whole runs with replacement and refitting (Efron & Tibshirani 1993) is what Hoffmann et al.
(2022) and Besiroglu et al. (2024, "Chinchilla Scaling: A replication attempt") do for the Chinchilla
parameters; intervals are the percentile interval of the refitted values. A resample with too few
distinct runs to determine the model is drawn again, so every refit is well posed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from scalelab.errors import InputError


def resamples(n: int, n_boot: int, seed: int, min_unique: int, max_tries: int = 100) -> Iterator[np.ndarray]:
    """`n_boot` index arrays of length n, each drawn with replacement with ≥ `min_unique` distinct indices."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        for _ in range(max_tries):
            idx = rng.integers(0, n, size=n)
            if len(np.unique(idx)) >= min_unique:
                break
        else:
            raise ValueError(f"could not draw a resample of {n} runs with {min_unique} distinct ones")
        yield idx


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` percentile interval of finite bootstrap samples (NaN if there are none)."""
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return (float(lo), float(hi))


def check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise InputError(f"level={level} must be in (0, 1), e.g. 0.95 for a 95% interval")
