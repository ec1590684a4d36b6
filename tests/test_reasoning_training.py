"""GRPO's objective (no gradient from a group whose rewards are all equal), and the reasoning steps as resumable
artifacts on a small random model."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from conftest import random_smoke_model
from scalelab.artifacts import read_meta
from scalelab.model.lm import load_lm
from scalelab.presets import preset
from scalelab.reasoning.config import GRPOConfig, PassKConfig, ReasoningConfig, SFTConfig, StarConfig
from scalelab.reasoning.grpo import LOSS_NORMS, group_advantages, grpo_loss, problem_pool
from scalelab.reasoning.rollout import reply_row
from scalelab.reasoning.run import run_task
from scalelab.reasoning.tasks import make_task
from scalelab.stage import Context
from scalelab.train.finetune import pad_batch, token_logprobs


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    final, _ = random_smoke_model(tmp_path_factory.mktemp("reasoning-model"))
    return final


def _batch(lm, group):
    rows = [reply_row(lm, "What is 2+3?", reply, 64) for reply in group]
    return pad_batch(rows, lm.pad_id)


def test_group_advantages():
    rewards = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    adv = group_advantages(rewards, scale=True)
    assert torch.equal(adv[:2], torch.zeros(2, 4))
    assert adv[2].tolist() == pytest.approx([0.866, -0.866, -0.866, 0.866], abs=1e-3)  # ÷ the unbiased std
    assert group_advantages(rewards, scale=False)[2].tolist() == [0.5, -0.5, -0.5, 0.5]


@pytest.mark.parametrize("norm", LOSS_NORMS)
def test_grpo_gradient_is_zero_for_a_group_with_equal_rewards(model_dir, norm):
    torch.manual_seed(0)
    lm = load_lm(model_dir, chat=True)
    ids, labels = _batch(lm, ["7+8+0=15, 5\nAnswer: 5", "Answer: 4", "Answer: 6", "1+1\nAnswer: 5"])
    cfg = GRPOConfig(loss_norm=norm, clip_high=0.28)
    with torch.no_grad():
        old, _ = token_logprobs(lm.model, ids, labels)
    # perturb the policy a little so the ratio is not 1 everywhere: the clipped branch is exercised too
    with torch.no_grad():
        for p in lm.model.parameters():
            p.add_(0.05 * torch.randn_like(p))

    def grads(rewards):
        lm.model.zero_grad(set_to_none=True)
        logp, mask = token_logprobs(lm.model, ids, labels)
        adv = group_advantages(torch.tensor([rewards]), scale=True).reshape(-1)
        loss, _ = grpo_loss(logp, old, mask, adv, cfg, max_new_tokens=32)
        loss.backward()
        return [p.grad for p in lm.model.parameters()]

    for equal in ([1.0] * 4, [0.0] * 4):
        assert all(g is None or torch.count_nonzero(g) == 0 for g in grads(equal))
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in grads([1.0, 0.0, 0.0, 1.0]))


def test_grpo_pool_keeps_the_difficulty_mix_to_the_last_step():
    """More problems asked than 1-digit sums exist: the pool is full, and its last steps are not all 3-digit."""
    task = make_task("arithmetic")
    n = 480
    assert len(task.mixed("train", n, 17)) < n  # the case: fewer distinct instances than the run asks
    pool = problem_pool(task, n, 17)
    assert len(pool) == n
    last_steps = pool[:80]  # popped last
    shares = {d: sum(p.difficulty == d for p in last_steps) / len(last_steps) for d in task.train_difficulties}
    assert min(shares.values()) > 0.05 and max(shares.values()) < 0.7, shares
    assert problem_pool(task, n, 17) == pool  # seeded


def test_grpo_kl_needs_a_reference():
    cfg = GRPOConfig(kl_beta=0.1)
    x = torch.zeros(1, 3)
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(x, x, torch.ones(1, 3, dtype=torch.bool), torch.zeros(1), cfg)
    loss, stats = grpo_loss(x, x, torch.ones(1, 3, dtype=torch.bool), torch.zeros(1), cfg, ref_logp=x)
    assert float(loss) == 0.0 and stats["kl"] == 0.0


def test_steps_are_resumable_artifacts(model_dir, tmp_path):
    cfg = ReasoningConfig(steps=["sft", "star", "grpo"], direct_baseline=["arithmetic"],
                          sft=SFTConfig(problems=48, epochs=1.0, batch_size=16),
                          star=StarConfig(iterations=1, problems=8, samples=2),
                          grpo=GRPOConfig(steps=2, prompts=2, group_size=2, seeds=[0, 1]),
                          eval=dataclasses.replace(PassKConfig(), problems=3, ks=[1, 2], verify_problems=2),
                          max_new_tokens=12, max_len=64)
    run = preset("smoke")
    run.reasoning = cfg
    logs: list[str] = []
    ctx = Context.standalone(run, tmp_path, log=logs.append)
    world = model_dir.parents[2] / "world"
    models = run_task(ctx, "arithmetic", model_dir, world, cfg)
    assert set(models) == {"sft", "star", "grpo", "grpo-s1", "sft-direct"}
    assert models["grpo-s1"]["from"] == "star" and models["star"]["from"] == "sft"
    for name, m in models.items():
        folder = ctx.layout.reasoning("arithmetic", name)
        assert read_meta(folder)["kind"] == "reasoning_model" and (folder / "model.safetensors").is_file()
        ev = json.loads((ctx.layout.reasoning_eval("arithmetic", name) / "results.json").read_text())
        assert set(ev["pass_at_k"]) == {"1", "2"} and ev["heldout_difficulty_pass_at_1"] is not None
        assert ("self_verification" in ev) == (name != "sft-direct")
        assert m["train"]["flops"] > 0
    assert len(models["grpo"]["train"]["steps"]) == 2
    again: list[str] = []
    ctx2 = Context.standalone(run, tmp_path, log=again.append)
    run_task(ctx2, "arithmetic", model_dir, world, cfg)
    assert all("skipped" in line for line in again), again
