"""pass@k and majority@k from n samples per problem, with bootstrap intervals over problems.

pass@k is the chance that at least one of k samples is right. Drawing k of the n samples without replacement,
Chen et al. (2021, "Evaluating Large Language Models Trained on Code") give the unbiased estimator
1 − C(n−c, k) / C(n, k) for a problem with c right samples, computed here as a running product so it is
exact in floating point for n in the hundreds. majority@k is the chance that the most common answer among k
samples is right (self-consistency, Wang et al. 2023): answers vote by the task's notion of equality (two
Countdown expressions reaching the target with the given numbers are the same answer), malformed replies
abstain, a tie is broken uniformly, and the expectation over k-subsets is estimated from `draws` random
subsets (exactly, over every subset, when there are no more than `draws` of them).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
from scipy import stats


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `c` right out of `n` samples (k ≤ n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_correct(votes: Sequence[Hashable | None], right: Hashable) -> float:
    """Expected correctness of a majority vote over `votes` (None abstains; ties broken uniformly)."""
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return 0.0
    top = max(counts.values())
    leaders = [v for v, c in counts.items() if c == top]
    return sum(v == right for v in leaders) / len(leaders)


def majority_at_k(votes: Sequence[Hashable | None], right: Hashable, k: int, draws: int = 64,
                  seed: int = 0) -> float:
    """majority@k of one problem from its n ≥ k sampled votes (see the module docstring)."""
    n = len(votes)
    if not 1 <= k <= n:
        raise ValueError(f"majority@k needs 1 <= k <= n; got n={n}, k={k}")
    if k == n:
        return majority_correct(votes, right)
    if k == 1:
        return sum(v is not None and v == right for v in votes) / n
    if math.comb(n, k) <= draws:  # few enough subsets to average over all of them exactly
        subsets = list(itertools.combinations(votes, k))
        return sum(majority_correct(s, right) for s in subsets) / len(subsets)
    rng = random.Random(seed)
    return sum(majority_correct(rng.sample(list(votes), k), right) for _ in range(draws)) / draws


def bootstrap_interval(values: Sequence[float], n_boot: int, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of per-problem values, resampling problems."""
    arr = np.asarray(values, dtype=float)
    if len(arr) == 0:
        return (float("nan"), float("nan"))
    if n_boot <= 0 or len(arr) == 1:
        return (float(arr.mean()), float(arr.mean()))
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), size=(n_boot, len(arr)))].mean(axis=1)
    tail = (1 - level) / 2
    return (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper) of a few independent runs (seeds) with a t interval."""
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    return mean, mean - half, mean + half
