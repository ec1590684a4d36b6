"""pass@k's unbiased estimator against brute-force enumeration, and majority@k's vote."""

from __future__ import annotations

import itertools
import math

import pytest

from scalelab.reasoning.passk import bootstrap_interval, majority_at_k, majority_correct, mean_interval, pass_at_k


def brute_pass_at_k(outcomes: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(outcomes, k))
    return sum(any(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(outcomes, k), abs=1e-12)


def test_pass_at_k_large_n_is_stable_and_monotone():
    values = [pass_at_k(256, 3, k) for k in (1, 4, 16, 64, 256)]
    assert values[0] == pytest.approx(3 / 256)
    assert values == sorted(values) and values[-1] == 1.0
    assert pass_at_k(256, 3, 64) == pytest.approx(1 - math.comb(253, 64) / math.comb(256, 64), rel=1e-9)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_majority_vote_and_its_expectation():
    assert majority_correct(["a", "a", "b"], "a") == 1.0
    assert majority_correct(["a", "b"], "a") == 0.5  # a tie, broken uniformly
    assert majority_correct([None, None, "b"], "a") == 0.0  # malformed replies abstain
    assert majority_correct([None], "a") == 0.0
    votes = ["a", "a", "b", "c", None, "a"]
    for k in range(1, len(votes) + 1):
        subsets = list(itertools.combinations(votes, k))
        exact = sum(majority_correct(s, "a") for s in subsets) / len(subsets)
        assert majority_at_k(votes, "a", k, draws=100) == pytest.approx(exact)
    # more subsets than draws: a Monte Carlo estimate near the exact value
    many = ["a"] * 9 + ["b"] * 7 + [None] * 4
    subsets = list(itertools.combinations(many, 5))
    exact = sum(majority_correct(s, "a") for s in subsets) / len(subsets)
    assert majority_at_k(many, "a", 5, draws=4000) == pytest.approx(exact, abs=0.03)


def test_intervals():
    lo, hi = bootstrap_interval([0.0, 1.0] * 50, 500)
    assert lo < 0.5 < hi
    mean, lo, hi = mean_interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and lo < 0.2 < hi
