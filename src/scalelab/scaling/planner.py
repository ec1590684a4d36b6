"""Plan a scaling sweep: IsoFLOP profiles from the depth dial, plus hold-out runs the fits never see.

Sizes come from the one size dial, `ModelConfig(depth=d)`, with parameters counted by
`model.flops.count_params` both with and without embeddings (every planned run records both, so a fit
can use either; see `scalelab.scaling` for which the fits use by default and why). Each run's compute is
counted exactly as the training loop reports it, `model.flops.train_flops` (6·N per token for the
weights that multiply, plus attention), so the tokens of a run at budget C are C / flops_per_token:
the "D = C/(6N)" of Hoffmann et al. (2022) with N the matmul parameters.

Budgets. Unless given, fitted budgets form a geometric ladder C_0·s^j (j < n_budgets, s =
`budget_spacing`), and C_0 is the *cheapest* value for which every budget, and the hold-out budget
`holdout_factor`·C_max, has enough sizes whose token count lies in [min_tokens, max_tokens] — at least
`min_tokens` so a run trains long enough to mean something, at most `max_tokens` (the corpus size) so
no run repeats data — and whose fitted profiles bracket the prior compute-optimal size. At each budget
the chosen sizes are the contiguous window of feasible depths centred (in log N) on that prior,
N*(C) = sqrt(C / (6·r)) with r = `tokens_per_param_prior` (≈ 20 tokens per parameter, Hoffmann et al.
2022 Table 3), so each IsoFLOP parabola has points on both sides of its likely minimum.

Hyperparameter transfer (`transfer_hparams`): the learning rate follows the training loop's own width
rule (`train.schedule.peak_lr`: lr·sqrt(w_ref/width) as nanochat does, or μP's lr·w_ref/width for Adam,
Yang et al. 2022 "Tensor Programs V"). The batch is held fixed across widths — under μP the optimal
batch transfers across width (Yang et al. 2022, §7), and nanochat keeps one batch across depths — except
that it is halved until a run gets at least `min_steps` optimiser steps, because a run of a handful of
steps mostly measures its warmup.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from scalelab.config import ConfigError
from scalelab.model.config import ModelConfig
from scalelab.model.flops import count_params, flops_per_token
from scalelab.scaling.runs import Run
from scalelab.scaling.serialize import json_result
from scalelab.train.config import TrainConfig
from scalelab.train.schedule import peak_lr

_SEARCH_STEPS_PER_DECADE = 200  # C_0 grid for the cheapest ladder: consecutive values 1.2% apart


@json_result("sweep_spec")
@dataclass(frozen=True)
class SweepSpec:
    """What a sweep must satisfy; `plan_sweep` finds the cheapest plan that does."""

    depths: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    n_budgets: int = 3
    sizes_per_budget: int = 4
    budget_spacing: float = 2.0
    min_tokens: int = 100_000
    max_tokens: int = 10_000_000  # the training corpus size in tokens
    holdout_factor: float = 4.0
    holdout_sizes: int = 2
    tokens_per_param_prior: float = 20.0
    min_steps: int = 20
    # sizes required on each side of the prior optimum (1: just bracket it; 2 keeps the prior inside the
    # window's middle, so a parabola has two points on each side even when the true optimum is off the prior)
    min_each_side: int = 1
    budgets: tuple[float, ...] = ()  # explicit fitted budgets (FLOPs); empty: the cheapest ladder


@json_result("planned_run")
@dataclass(frozen=True)
class PlannedRun:
    """One run of the sweep: its size, token budget, compute, and the hyperparameters it trains with."""

    name: str
    depth: int
    d_model: int
    budget: float  # the nominal compute of its IsoFLOP profile
    tokens: int  # whole optimiser steps of batch_size × seq_len
    flops: float  # train_flops(model, tokens, seq_len): differs from budget by under half a step
    params: int
    non_embedding_params: int
    batch_size: int
    lr: float
    holdout: bool

    def to_run(self, loss: float) -> Run:
        """The finished run as a fit's table row."""
        return Run(N=self.params, D=self.tokens, loss=loss, C=self.flops, N_nonemb=self.non_embedding_params,
                   name=self.name, budget=self.budget, holdout=self.holdout)


@json_result("sweep_plan")
@dataclass(frozen=True)
class SweepPlan:
    runs: tuple[PlannedRun, ...]
    budgets: tuple[float, ...]  # fitted budgets, ascending
    holdout_budget: float
    spec: SweepSpec

    @property
    def fit_runs(self) -> tuple[PlannedRun, ...]:
        return tuple(r for r in self.runs if not r.holdout)

    @property
    def holdout_runs(self) -> tuple[PlannedRun, ...]:
        return tuple(r for r in self.runs if r.holdout)

    @property
    def total_flops(self) -> float:
        return float(sum(r.flops for r in self.runs))


def transfer_hparams(train: TrainConfig, model: ModelConfig, tokens: int, min_steps: int = 20) -> tuple[float, int]:
    """(peak learning rate, batch size in sequences) for `model` trained on `tokens` (module docstring)."""
    batch = train.batch_size
    while batch > 1 and tokens / (batch * train.seq_len) < min_steps:
        batch //= 2
    return peak_lr(train, model.d_model), batch


@dataclass(frozen=True)
class _Size:
    depth: int
    model: ModelConfig
    params: int
    non_embedding: int
    flops_per_token: int


def _sizes(base: ModelConfig, depths: tuple[int, ...], seq_len: int) -> list[_Size]:
    if not depths or any(d < 1 for d in depths):
        raise ConfigError(f"sweep depths {depths} must be a non-empty list of positive depths")
    sizes = []
    for d in sorted(set(depths)):
        cfg = dataclasses.replace(base, depth=d)
        total, non_emb = count_params(cfg)
        sizes.append(_Size(d, cfg, total, non_emb, flops_per_token(cfg, seq_len)))
    return sizes


def _run(size: _Size, budget: float, train: TrainConfig, spec: SweepSpec, holdout: bool) -> PlannedRun | None:
    """The run of `size` at `budget`, or None if its token count falls outside the spec's range."""
    raw = budget / size.flops_per_token
    lr, batch = transfer_hparams(train, size.model, int(raw), spec.min_steps)
    step = batch * train.seq_len
    tokens = max(1, round(raw / step)) * step
    if not spec.min_tokens <= tokens <= spec.max_tokens:
        return None
    name = f"{'holdout_' if holdout else ''}C{budget:.3e}_d{size.depth}"
    return PlannedRun(name, size.depth, size.model.d_model, float(budget), int(tokens),
                      float(size.flops_per_token * tokens), size.params, size.non_embedding, batch, lr, holdout)


def _brackets(window: list[PlannedRun], target: float, each_side: int) -> bool:
    """At least `each_side` sizes of the window at or below the prior optimum, and as many at or above it."""
    log_n = [math.log(r.params) for r in window]
    return sum(x <= target for x in log_n) >= each_side and sum(x >= target for x in log_n) >= each_side


def _profile(sizes: list[_Size], budget: float, k: int, train: TrainConfig, spec: SweepSpec, holdout: bool,
             bracket: bool) -> list[PlannedRun] | None:
    """k feasible runs at `budget` centred on the prior optimum, or None if there is no such window."""
    feasible = [r for s in sizes if (r := _run(s, budget, train, spec, holdout)) is not None]
    if len(feasible) < k:
        return None
    target = 0.5 * math.log(budget / (6.0 * spec.tokens_per_param_prior))
    log_n = np.log([r.params for r in feasible])
    windows = [feasible[i: i + k] for i in range(len(feasible) - k + 1)]
    centres = [abs(np.mean(log_n[i: i + k]) - target) for i in range(len(windows))]
    best = windows[int(np.argmin(centres))]
    if bracket and not _brackets(best, target, spec.min_each_side):
        return None
    return best


def _plan_at(sizes: list[_Size], budgets: list[float], train: TrainConfig, spec: SweepSpec,
             ) -> tuple[list[PlannedRun], list[str]]:
    """Runs for these fitted budgets and their hold-out, and the problems that make them infeasible."""
    runs, problems = [], []
    for c in budgets:
        profile = _profile(sizes, c, spec.sizes_per_budget, train, spec, False, bracket=not spec.budgets)
        if profile is None:
            problems.append(f"budget {c:.3g} has fewer than {spec.sizes_per_budget} sizes with tokens in range")
        else:
            runs += profile
    holdout_budget = spec.holdout_factor * max(budgets)
    held = _profile(sizes, holdout_budget, spec.holdout_sizes, train, spec, True, bracket=False)
    if held is None:
        problems.append(f"hold-out budget {holdout_budget:.3g} has fewer than {spec.holdout_sizes} sizes in range")
    else:
        runs += held
    return runs, problems


def _check_spec(spec: SweepSpec) -> None:
    if spec.n_budgets < 3 or spec.sizes_per_budget < 4:
        raise ConfigError(f"a sweep needs n_budgets >= 3 and sizes_per_budget >= 4 (got {spec.n_budgets}, "
                          f"{spec.sizes_per_budget}) for approach 2's parabolas and power laws")
    if spec.holdout_factor < 4 or spec.holdout_sizes < 1:
        raise ConfigError(f"hold-outs must sit at >= 4x the largest fitted budget with >= 1 size (got "
                          f"holdout_factor={spec.holdout_factor}, holdout_sizes={spec.holdout_sizes})")
    if not 0 < spec.min_tokens < spec.max_tokens:
        raise ConfigError(f"need 0 < min_tokens < max_tokens (got {spec.min_tokens}, {spec.max_tokens})")
    if not 1 <= spec.min_each_side <= spec.sizes_per_budget // 2:
        raise ConfigError(f"min_each_side={spec.min_each_side} must be in [1, sizes_per_budget // 2 = "
                          f"{spec.sizes_per_budget // 2}]")
    if spec.budget_spacing <= 1:
        raise ConfigError(f"budget_spacing={spec.budget_spacing} must be > 1 (each budget larger than the last)")
    if spec.budgets and len(spec.budgets) < 3:
        raise ConfigError(f"give at least 3 explicit budgets (got {list(spec.budgets)})")


def plan_sweep(base: ModelConfig, train: TrainConfig, spec: SweepSpec | None = None) -> SweepPlan:
    """The IsoFLOP sweep and hold-out runs for `spec` (see the module docstring for the rules)."""
    spec = spec or SweepSpec()
    _check_spec(spec)
    sizes = _sizes(base, spec.depths, train.seq_len)
    if spec.budgets:
        budgets = sorted(float(c) for c in spec.budgets)
        runs, problems = _plan_at(sizes, budgets, train, spec)
        if problems:
            raise ConfigError("the given sweep budgets do not fit the token range: " + "; ".join(problems)
                              + f" (tokens must be in [{spec.min_tokens}, {spec.max_tokens}]; change the "
                              "budgets, depths or token range)")
        return SweepPlan(tuple(runs), tuple(budgets), spec.holdout_factor * budgets[-1], spec)
    lo = min(s.flops_per_token for s in sizes) * spec.min_tokens
    hi = max(s.flops_per_token for s in sizes) * spec.max_tokens
    n_grid = max(2, math.ceil(math.log10(hi / lo) * _SEARCH_STEPS_PER_DECADE) + 1)
    for c0 in np.geomspace(lo, hi, n_grid):
        budgets = [float(c0 * spec.budget_spacing ** j) for j in range(spec.n_budgets)]
        runs, problems = _plan_at(sizes, budgets, train, spec)
        if not problems:
            return SweepPlan(tuple(runs), tuple(budgets), spec.holdout_factor * budgets[-1], spec)
    raise ConfigError(
        f"no ladder of {spec.n_budgets} budgets (x{spec.budget_spacing} apart, hold-out at x{spec.holdout_factor}) "
        f"gives {spec.sizes_per_budget} depths from {list(spec.depths)} with tokens in "
        f"[{spec.min_tokens}, {spec.max_tokens}] bracketing the prior optimum; add depths, widen the token "
        "range (a larger corpus raises max_tokens), or lower budget_spacing / holdout_factor"
    )
