"""GRPO (Shao et al. 2024, "DeepSeekMath"): policy gradient with group-relative advantages and the checker as reward.

Each step asks `prompts` fresh training problems, samples `group_size` replies to each, and rewards a reply 1
when the task's checker accepts it, else 0. A reply's advantage is its reward minus its group's mean, divided
by the group's standard deviation unless `scale_rewards` is off (Dr. GRPO, Liu et al. 2025: the division
up-weights groups that are nearly all right or all wrong). The policy then takes `inner_steps` AdamW steps on
the clipped surrogate, per token t of reply i,

    −min(ρ·A_i, clip(ρ, 1 − ε_low, 1 + ε_high)·A_i),   ρ = π_θ(token) / π_old(token),

plus `kl_beta` times the k3 estimate of KL(π_θ ‖ π_ref) to the starting model when asked for. How the
per-token terms become one loss is `loss_norm`: `sequence` averages each reply's tokens and then the replies
(GRPO; it favours long wrong replies), `token` averages over every token of the batch (DAPO, Yu et al. 2025),
`constant` sums and divides by replies × max_new_tokens (Dr. GRPO). DAPO's clip-higher is `clip_high` >
`clip_low`, and its dynamic sampling (`dynamic_sampling`) leaves out groups whose rewards are all equal and
samples more prompts to replace them. A group whose rewards are all equal has zero advantage for every reply,
so (without KL) it contributes exactly no gradient.

The optimiser is one AdamW kept across steps: the samples arrive online, so `train.finetune.optimise`, which
makes a fresh optimiser per call, would reset Adam's moments at every step; rows are padded with
`train.finetune.pad_batch` and scored with `train.finetune.token_logprobs` as everywhere else.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import torch
from tqdm import tqdm

from scalelab.errors import InputError
from scalelab.model.lm import LM
from scalelab.reasoning.config import GRPOConfig
from scalelab.reasoning.rollout import reply_row, sample
from scalelab.reasoning.tasks import Problem, Task
from scalelab.train.finetune import IGNORE, pad_batch, token_logprobs

LOSS_NORMS = ("sequence", "token", "constant")
MICRO_BATCH = 64  # rows per forward/backward; gradients accumulate across them


def group_advantages(rewards: torch.Tensor, scale: bool, eps: float = 1e-4) -> torch.Tensor:
    """(prompts, group) rewards → advantages relative to each group's mean (÷ its std when `scale`)."""
    adv = rewards - rewards.mean(dim=1, keepdim=True)
    if scale and rewards.shape[1] > 1:
        adv = adv / (rewards.std(dim=1, keepdim=True) + eps)
    return adv


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor,
              cfg: GRPOConfig, *, ref_logp: torch.Tensor | None = None, rows_total: int | None = None,
              tokens_total: int | None = None, max_new_tokens: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate (+ KL) of a batch of replies: (B, T) token log-probabilities under the policy and
    the sampling policy, the reply-token mask, (B,) advantages. With `rows_total` / `tokens_total` the batch is
    one micro-batch of a larger one and the losses of all micro-batches sum to the whole batch's."""
    m = mask.float()
    ratio = torch.exp(logp - old_logp)
    a = adv.unsqueeze(1)
    per_token = -torch.minimum(ratio * a, torch.clamp(ratio, 1 - cfg.clip_low, 1 + cfg.clip_high) * a)
    kl = torch.zeros_like(per_token)
    if cfg.kl_beta > 0:
        if ref_logp is None:
            raise InputError("GRPO with kl_beta > 0 needs the reference model's log-probabilities")
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1  # k3: unbiased, always >= 0
        per_token = per_token + cfg.kl_beta * kl
    rows = rows_total or logp.shape[0]
    if cfg.loss_norm == "sequence":
        loss = ((per_token * m).sum(1) / m.sum(1).clamp(min=1)).sum() / rows
    elif cfg.loss_norm == "token":
        loss = (per_token * m).sum() / max(1, tokens_total or int(m.sum()))
    elif cfg.loss_norm == "constant":
        loss = (per_token * m).sum() / (rows * max_new_tokens)
    else:
        raise InputError(f"reasoning.grpo.loss_norm={cfg.loss_norm!r}; choose one of {', '.join(LOSS_NORMS)}")
    n = m.sum().clamp(min=1)
    clipped = (((a > 0) & (ratio > 1 + cfg.clip_high)) | ((a < 0) & (ratio < 1 - cfg.clip_low))) & mask
    return loss, {"kl": float((kl * m).sum() / n), "clip_fraction": float(clipped.sum() / n)}


def problem_pool(task: Task, n: int, seed: int) -> list[Problem]:
    """`n` training problems in a shuffled order, drawn from the end with `pop()`.

    `Task.mixed` interleaves the difficulties until the one with the fewest distinct instances (1-digit sums: ~80)
    runs out and then appends the rest difficulty by difficulty, and returns fewer than `n` when the task has
    fewer distinct instances. Taken in that order, a long run would spend its last steps on the hardest problems
    alone (the mean reward falls with no change in the policy) and then find the pool empty. Shuffled, every
    step sees the same mix in expectation; a task with fewer than `n` instances repeats them, each pass in a
    fresh order (fresh samples are drawn for a repeated problem, so it still carries new signal)."""
    distinct = task.mixed("train", n, seed)
    if not distinct:
        raise InputError(f"task {task.name!r} has no training problems for GRPO")
    rng, pool = random.Random(seed), []
    while len(pool) < n:
        shuffled = list(distinct)
        rng.shuffle(shuffled)
        pool += shuffled
    return pool[:n]


def _draw(lm: LM, task: Task, pool: list[Problem], cfg: GRPOConfig, max_new_tokens: int, seed: int,
          batch_size: int) -> tuple[list[Problem], list[list[list[int]]], list[list[bool]], torch.Tensor, int, int]:
    """Problems with their sampled groups and rewards; with dynamic sampling, only groups whose rewards differ
    (up to 4 draws of `prompts` problems to fill the batch). Returns also the groups drawn and tokens sampled."""
    problems, ids, ended, rewards = [], [], [], []
    drawn = tokens = 0
    for attempt in range(4 if cfg.dynamic_sampling else 1):
        batch = [pool.pop() for _ in range(min(cfg.prompts, len(pool)))]
        if not batch:
            break
        got = sample(lm, [p.question for p in batch], cfg.group_size, temperature=cfg.temperature,
                     max_new_tokens=max_new_tokens, seed=seed * 7919 + attempt, batch_size=batch_size)
        drawn += len(batch)
        tokens += got.tokens
        for p, texts, toks, ends in zip(batch, got.texts, got.ids, got.ended, strict=True):
            r = [float(task.check(p, t)) for t in texts]
            if cfg.dynamic_sampling and min(r) == max(r):
                continue
            problems.append(p)
            ids.append(toks)
            ended.append(ends)
            rewards.append(r)
        if len(problems) >= cfg.prompts:
            break
    keep = slice(0, cfg.prompts)
    return (problems[keep], ids[keep], ended[keep], torch.tensor(rewards[keep]).reshape(-1, cfg.group_size), drawn,
            tokens)


def run_grpo(lm: LM, task: Task, cfg: GRPOConfig, *, max_new_tokens: int, max_len: int, seed: int,
             batch_size: int = 256, progress: bool = False) -> dict[str, Any]:
    """GRPO on `lm` in place; per step the mean reward, the share of groups with no signal, loss, KL, length."""
    if cfg.group_size < 2:
        raise InputError(f"reasoning.grpo.group_size={cfg.group_size}: a group needs at least 2 replies")
    torch.manual_seed(seed)
    model = lm.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ref = copy.deepcopy(model).eval() if cfg.kl_beta > 0 else None
    draws = 4 if cfg.dynamic_sampling else 1
    pool = problem_pool(task, cfg.steps * cfg.prompts * draws, seed + 17)
    history, sampled_tokens, trained_tokens = [], 0, 0
    for step in tqdm(range(cfg.steps), desc=f"grpo {task.name}", disable=not progress, leave=False):
        problems, ids, ended, rewards, drawn, tokens = _draw(lm, task, pool, cfg, max_new_tokens, seed * 100_003 + step,
                                                            batch_size)
        sampled_tokens += tokens
        record: dict[str, Any] = {"step": step, "groups_drawn": drawn, "groups_used": len(problems),
                                  "reward": float(rewards.mean()) if len(problems) else None}
        if not problems:
            history.append(record)
            continue
        adv = group_advantages(rewards, cfg.scale_rewards).reshape(-1)
        rows = [reply_row(lm, p.question, toks, max_len, ended=e)
                for p, group, ends in zip(problems, ids, ended, strict=True)
                for toks, e in zip(group, ends, strict=True)]
        batch_ids, labels = pad_batch(rows, lm.pad_id)
        with torch.no_grad():
            old = torch.cat([token_logprobs(model, batch_ids[s:s + MICRO_BATCH], labels[s:s + MICRO_BATCH])[0]
                             for s in range(0, len(rows), MICRO_BATCH)])
            refl = None if ref is None else torch.cat(
                [token_logprobs(ref, batch_ids[s:s + MICRO_BATCH], labels[s:s + MICRO_BATCH])[0]
                 for s in range(0, len(rows), MICRO_BATCH)])
        tokens_total = int((labels[:, 1:] != IGNORE).sum())
        model.train()
        for _ in range(cfg.inner_steps):
            opt.zero_grad(set_to_none=True)
            total, stats = 0.0, {"kl": 0.0, "clip_fraction": 0.0}
            for s in range(0, len(rows), MICRO_BATCH):
                sl = slice(s, s + MICRO_BATCH)
                logp, mask = token_logprobs(model, batch_ids[sl], labels[sl])
                loss, st = grpo_loss(logp, old[sl], mask, adv[sl], cfg, ref_logp=None if refl is None else refl[sl],
                                     rows_total=len(rows), tokens_total=tokens_total, max_new_tokens=max_new_tokens)
                loss.backward()
                total += float(loss.detach())
                share = float(mask.sum()) / max(1, tokens_total)
                stats = {k: stats[k] + st[k] * share for k in stats}
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            trained_tokens += int(batch_ids.numel())
        model.eval()
        zero_std = float((rewards.std(dim=1) == 0).float().mean())
        record.update(loss=total, frac_reward_zero_std=zero_std, mean_reply_tokens=tokens_total / len(rows), **stats)
        history.append(record)
    rewards_seen = [h["reward"] for h in history if h["reward"] is not None]
    return {"steps": history, "sampled_tokens": sampled_tokens, "trained_tokens": trained_tokens,
            "first_reward": rewards_seen[0] if rewards_seen else None,
            "last_reward": sum(rewards_seen[-5:]) / len(rewards_seen[-5:]) if rewards_seen else None}
