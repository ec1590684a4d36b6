"""The sweep planner's invariants: budgets, sizes per budget, token range, FLOPs, hold-outs, errors."""

from __future__ import annotations

import dataclasses
import math

import pytest

from scalelab.config import ConfigError
from scalelab.model.flops import count_params, train_flops
from scalelab.presets import preset
from scalelab.scaling import SweepPlan, SweepSpec, fit_chinchilla, plan_sweep, transfer_hparams
from scalelab.train.schedule import peak_lr

SPEC = SweepSpec(depths=tuple(range(1, 9)), min_tokens=100_000, max_tokens=10_000_000)


@pytest.fixture(scope="module")
def tiny():
    return preset("tiny")


@pytest.fixture(scope="module")
def plan(tiny) -> SweepPlan:
    return plan_sweep(tiny.model, tiny.train, SPEC)


def test_plan_has_enough_budgets_and_sizes(plan):
    assert len(plan.budgets) >= 3
    assert all(b2 / b1 == pytest.approx(SPEC.budget_spacing) for b1, b2 in zip(plan.budgets, plan.budgets[1:],
                                                                                strict=False))
    for budget in plan.budgets:
        depths = [r.depth for r in plan.fit_runs if r.budget == budget]
        assert len(depths) >= 4 and len(set(depths)) == len(depths)


def test_every_run_is_in_the_token_range_and_spends_its_budget(plan, tiny):
    for r in plan.runs:
        assert SPEC.min_tokens <= r.tokens <= SPEC.max_tokens, r.name
        step = r.batch_size * tiny.train.seq_len
        assert r.tokens % step == 0  # whole optimiser steps, as the training loop trains
        cfg = dataclasses.replace(tiny.model, depth=r.depth)
        assert r.flops == train_flops(cfg, r.tokens, tiny.train.seq_len)  # the loop's own FLOP count
        # tokens = budget / flops_per_token, rounded to the nearest whole step
        assert abs(r.flops / r.budget - 1) <= step / 2 / (r.tokens - step / 2) + 1e-12
        assert (r.params, r.non_embedding_params) == count_params(cfg)
        assert r.d_model == cfg.d_model
        assert r.tokens / (r.batch_size * tiny.train.seq_len) >= SPEC.min_steps or r.batch_size == 1


def test_holdouts_sit_beyond_the_fitted_budgets_and_are_flagged(plan):
    held = plan.holdout_runs
    assert len(held) >= SPEC.holdout_sizes and all(r.holdout for r in held)
    assert plan.holdout_budget >= 4 * max(plan.budgets)
    assert all(r.budget == plan.holdout_budget for r in held)
    assert not any(r.holdout for r in plan.fit_runs)
    assert len(plan.fit_runs) + len(held) == len(plan.runs)
    assert len({r.name for r in plan.runs}) == len(plan.runs)


def test_profiles_bracket_the_prior_optimum(plan):
    for budget in plan.budgets:
        sizes = sorted(r.params for r in plan.fit_runs if r.budget == budget)
        prior = math.sqrt(budget / (6 * SPEC.tokens_per_param_prior))
        assert sizes[0] <= prior <= sizes[-1]


def _meets_the_rules(model, train, budgets) -> bool:
    """Whether these fitted budgets satisfy the token range (explicit budgets) and bracket the prior."""
    try:
        plan = plan_sweep(model, train, dataclasses.replace(SPEC, budgets=tuple(budgets)))
    except ConfigError:
        return False
    for budget in plan.budgets:
        sizes = sorted(r.params for r in plan.fit_runs if r.budget == budget)
        if not sizes[0] <= math.sqrt(budget / (6 * SPEC.tokens_per_param_prior)) <= sizes[-1]:
            return False
    return True


def test_plan_is_the_cheapest_ladder_that_meets_the_rules(plan, tiny):
    assert _meets_the_rules(tiny.model, tiny.train, plan.budgets)
    assert not _meets_the_rules(tiny.model, tiny.train, [b * 0.97 for b in plan.budgets])


def test_holdout_runs_stay_out_of_the_fit(plan):
    runs = [r.to_run(loss=2.0 + 40 / r.params ** 0.3 + 200 / r.tokens ** 0.3) for r in plan.runs]
    fit = fit_chinchilla(runs, n_bootstrap=0, n_starts=4)
    assert fit.n_runs == len(plan.fit_runs)
    assert sorted(e.name for e in fit.excluded) == sorted(r.name for r in plan.holdout_runs)


def test_explicit_budgets_are_honoured_or_refused(tiny):
    spec = dataclasses.replace(SPEC, budgets=(2e12, 1e12, 4e12))
    plan = plan_sweep(tiny.model, tiny.train, spec)
    assert plan.budgets == (1e12, 2e12, 4e12) and plan.holdout_budget == 1.6e13
    with pytest.raises(ConfigError, match=r"budget 1e\+20"):
        plan_sweep(tiny.model, tiny.train, dataclasses.replace(SPEC, budgets=(1e12, 2e12, 1e20)))


def test_impossible_or_invalid_specs_are_refused(tiny):
    with pytest.raises(ConfigError, match="widen the token range"):
        plan_sweep(tiny.model, tiny.train, dataclasses.replace(SPEC, depths=(1, 2, 3, 4), max_tokens=200_000))
    with pytest.raises(ConfigError, match="sizes_per_budget >= 4"):
        plan_sweep(tiny.model, tiny.train, dataclasses.replace(SPEC, sizes_per_budget=3))
    with pytest.raises(ConfigError, match="holdout_factor"):
        plan_sweep(tiny.model, tiny.train, dataclasses.replace(SPEC, holdout_factor=2.0))
    with pytest.raises(ConfigError, match="min_tokens < max_tokens"):
        plan_sweep(tiny.model, tiny.train, dataclasses.replace(SPEC, min_tokens=10**8))


def test_transfer_rule_scales_lr_with_width_and_keeps_batch(tiny):
    small, wide = (dataclasses.replace(tiny.model, depth=d) for d in (2, 8))
    lr_small, batch_small = transfer_hparams(tiny.train, small, tokens=10**7)
    lr_wide, batch_wide = transfer_hparams(tiny.train, wide, tokens=10**7)
    assert lr_small == peak_lr(tiny.train, small.d_model) and lr_wide < lr_small
    assert lr_small / lr_wide == pytest.approx(math.sqrt(wide.d_model / small.d_model))  # sqrt_width rule
    assert batch_small == batch_wide == tiny.train.batch_size
    mup = dataclasses.replace(tiny.train, lr_scaling="width")
    assert transfer_hparams(mup, small, 10**7)[0] / transfer_hparams(mup, wide, 10**7)[0] == pytest.approx(4.0)
    # a short run gets a smaller batch so it still takes min_steps optimiser steps
    _, batch = transfer_hparams(tiny.train, small, tokens=40_000, min_steps=20)
    assert batch < tiny.train.batch_size and 40_000 / (batch * tiny.train.seq_len) >= 20


def test_plan_json_round_trip(plan):
    assert SweepPlan.from_json(plan.to_json()) == plan


def test_min_each_side_centres_the_prior_in_each_profile(tiny):
    narrow = dataclasses.replace(tiny.model, aspect_ratio=16, head_dim=16)  # the tiny preset's sweep family
    spec = dataclasses.replace(SPEC, min_each_side=2)
    plan = plan_sweep(narrow, tiny.train, spec)
    for budget in plan.budgets:
        sizes = sorted(r.params for r in plan.fit_runs if r.budget == budget)
        prior = math.sqrt(budget / (6 * spec.tokens_per_param_prior))
        assert sizes[1] <= prior <= sizes[-2]
    assert plan.budgets[0] > plan_sweep(narrow, tiny.train, SPEC).budgets[0]  # centring costs compute
    with pytest.raises(ConfigError, match="min_each_side"):
        plan_sweep(narrow, tiny.train, dataclasses.replace(SPEC, min_each_side=3))
