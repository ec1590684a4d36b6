"""Capability forecasts recover known sigmoids, forecast with intervals, and refuse bad inputs.

Synthetic evals: accuracy = chance + (ceiling − chance)·σ(slope·(x − midpoint)), scored on 400 items
(binomial noise, sd ≤ 2.5 points). Tolerances (midpoint ±0.15 decade or ±0.05 nat, slope ±25%,
ceiling ±0.05) are wide next to that noise but fail for a fit with the wrong sign, floor or scale.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalelab.scaling import (
    CapabilityFit,
    ForecastTable,
    Run,
    ScalingFitError,
    fit_capability,
    fit_power_law,
    forecast,
)

CHANCE, CEILING, MID, SLOPE = 0.25, 0.9, 15.0, 2.0  # midpoint 1e15 FLOPs, 2 per decade
ITEMS = 400


def sigmoid_acc(x, mid, slope, chance=CHANCE, ceiling=CEILING):
    return chance + (ceiling - chance) / (1 + np.exp(-slope * (x - mid)))


def scored(p, rng):
    return rng.binomial(ITEMS, p) / ITEMS


@pytest.fixture(scope="module")
def compute_fit() -> CapabilityFit:
    rng = np.random.default_rng(0)
    compute = np.geomspace(1e13, 1e17, 12)
    acc = scored(sigmoid_acc(np.log10(compute), MID, SLOPE), rng)
    return fit_capability(compute, acc, chance=CHANCE, eval_name="fact_recall", n_bootstrap=200)


def test_compute_sigmoid_recovers_parameters(compute_fit):
    assert abs(compute_fit.midpoint - MID) < 0.15
    assert abs(compute_fit.slope / SLOPE - 1) < 0.25
    assert abs(compute_fit.ceiling - CEILING) < 0.05
    assert compute_fit.chance == CHANCE and compute_fit.basis == "compute"
    for name, true in (("midpoint", MID), ("slope", SLOPE), ("ceiling", CEILING)):
        lo, hi = compute_fit.intervals[name]
        assert lo <= true <= hi, f"{name}: {true} outside [{lo}, {hi}]"


def test_forecast_from_compute_has_an_interval_around_the_truth(compute_fit):
    table = ForecastTable({"fact_recall": compute_fit})
    at = 4e17  # 4x the largest fitted run
    f = forecast(table, "fact_recall", at)
    true = float(sigmoid_acc(math.log10(at), MID, SLOPE))
    lo, hi = f.interval
    assert lo <= f.accuracy <= hi and lo <= true <= hi
    assert abs(f.accuracy - true) < 0.03
    assert f.loss is None
    below = forecast(table, "fact_recall", 1e14)
    assert below.accuracy < f.accuracy  # accuracy rises with compute


def test_fixed_ceiling_fits_two_parameters():
    compute = np.geomspace(1e13, 1e15, 5)
    acc = sigmoid_acc(np.log10(compute), 14.0, 1.5, ceiling=1.0)
    fit = fit_capability(compute, acc, chance=0.0 + CHANCE, ceiling=1.0, n_bootstrap=20)
    assert fit.ceiling == 1.0 and abs(fit.midpoint - 14.0) < 1e-3 and abs(fit.slope - 1.5) < 1e-3


def test_loss_based_forecast_goes_through_the_loss_law():
    rng = np.random.default_rng(1)
    compute = np.geomspace(1e13, 1e17, 10)
    loss = 2.0 + 3e3 / compute ** 0.25  # L(C), from ~5.0 down to ~2.3 nats
    runs = [Run(N=1e6, D=c / 6e6, C=c, loss=float(value * math.exp(rng.normal(0, 0.002))))
            for c, value in zip(compute, loss, strict=True)]
    law = fit_power_law(runs, "C", n_bootstrap=100)
    loss_mid, loss_slope = 3.0, 4.0  # half-way at 3 nats, 4 per nat
    acc = scored(sigmoid_acc(-loss, -loss_mid, loss_slope), rng)
    fit = fit_capability(loss, acc, chance=CHANCE, basis="loss", eval_name="hazard", n_bootstrap=100)
    assert abs(fit.midpoint - (-loss_mid)) < 0.05 and abs(fit.slope / loss_slope - 1) < 0.25
    assert fit.predict(2.5) > fit.predict(3.5)  # lower loss, higher accuracy

    table = ForecastTable({"hazard": fit}, loss_law=law)
    at = 4e17
    f = table.forecast("hazard", at)
    true_loss = 2.0 + 3e3 / at ** 0.25
    assert f.loss == pytest.approx(true_loss, rel=0.02)
    true_acc = float(sigmoid_acc(-true_loss, -loss_mid, loss_slope))
    assert f.interval[0] <= true_acc <= f.interval[1] and abs(f.accuracy - true_acc) < 0.04
    # the interval pairs the i-th loss-law refit with the i-th sigmoid refit
    law_losses = law.predict_samples(at)
    paired = [fit.chance + (c - fit.chance) / (1 + math.exp(-s * (-loss_b - m)))
              for (c, m, s), loss_b in zip(fit.samples, law_losses, strict=True)]
    assert f.interval == pytest.approx(tuple(np.percentile(paired, [5, 95])))

    back = ForecastTable.from_json(table.to_json())
    assert back.forecast("hazard", at) == f


def test_forecast_errors_name_the_problem(compute_fit):
    table = ForecastTable({"fact_recall": compute_fit})
    with pytest.raises(ScalingFitError, match="fitted evals: fact_recall"):
        table.forecast("arithmetic", 1e16)
    loss_fit = CapabilityFit("x", "loss", 0.25, 0.9, -3.0, 4.0, {}, 0.9, 5, 0.0, ((0.9, -3.0, 4.0),))
    with pytest.raises(ScalingFitError, match="loss_law"):
        ForecastTable({"x": loss_fit}).forecast("x", 1e16)
    with pytest.raises(ScalingFitError, match="compute=-1"):
        table.forecast("fact_recall", -1)


def test_bad_capability_inputs_are_refused():
    c = np.geomspace(1e13, 1e15, 6)
    with pytest.raises(ScalingFitError, match=r"positions \[2\]"):
        fit_capability(c, [0.3, 0.4, 1.2, 0.6, 0.7, 0.8], chance=0.25)
    with pytest.raises(ScalingFitError, match=r"chance=1\.5"):
        fit_capability(c, [0.3] * 6, chance=1.5)
    with pytest.raises(ScalingFitError, match="at least 4"):
        fit_capability(c[:3], [0.3, 0.5, 0.7], chance=0.25)
    with pytest.raises(ScalingFitError, match="one compute value per accuracy"):
        fit_capability(c, [0.3] * 5, chance=0.25)
    with pytest.raises(ScalingFitError, match="basis"):
        fit_capability(c, [0.3] * 6, chance=0.25, basis="tokens")
