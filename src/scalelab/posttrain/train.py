"""The preference objectives of post-training, run by the fine-tuning loop of `train.finetune`.

SFT itself (cross-entropy over the assistant's tokens only) is `train.finetune.train_sft`.

- DPO with soft labels: for a pair (a, b) with p = P(a preferred), the loss is
  -[p·log σ(m) + (1-p)·log σ(-m)] with m = β·((log π(a) - log π_ref(a)) - (log π(b) - log π_ref(b))).
  p ∈ {0, 1} is plain DPO; a constant p = 1-ε is DPO with label smoothing ε (conservative DPO), which
  is what TRL's `label_smoothing` does; here every pair carries its own p, the feedback model's soft label.
- DPO lowers the likelihood of the chosen reply along with the rejected one when pushed (the margin grows
  while both fall), and a small model then drifts to replies neither side contains. `nll_weight` adds the
  chosen reply's per-token negative log-likelihood, weighted by how confident the label is (max(2p-1, 0) for
  a, max(1-2p, 0) for b, so a tie adds nothing), as in RPO / DPO+NLL (Pang et al. 2024).
- Reward model: a scalar head on the trained model's final hidden state at the last token, trained with the
  same soft Bradley-Terry loss on r(a) - r(b).

Why not TRL's trainers (measured, BENCHMARKS.md "Post-training: TRL vs the in-house loop"): on the tiny
ladder's d4, SFT batch 16, one CPU thread each, TRL 1.16's SFTTrainer took 0.59 s per step against 0.16 s
here (HF's Llama and the Trainer's machinery around every step), plus ~2.5 s import and set-up per
trainer. Post-training runs five trainers inside a 3-minute budget. Beyond speed, the RL-CAI labels are
soft and differ per pair, while TRL's DPOTrainer takes one scalar `label_smoothing` and its RewardTrainer
hard pairs only, so both would need their loss methods overridden anyway.
The loss functions are the published ones and are tested on toy pairs (tests/test_posttrain_losses.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.errors import InputError
from scalelab.model.lm import model_logits
from scalelab.train.finetune import IGNORE, OptimConfig, Row, optimise, pad_batch, sequence_logprobs


def soft_dpo_loss(pi_a: torch.Tensor, pi_b: torch.Tensor, ref_a: torch.Tensor, ref_b: torch.Tensor,
                  p_a: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean soft-label DPO loss over pairs (all inputs shape (B,); see the module docstring)."""
    margin = beta * ((pi_a - ref_a) - (pi_b - ref_b))
    return -(p_a * F.logsigmoid(margin) + (1 - p_a) * F.logsigmoid(-margin)).mean()


def soft_bradley_terry_loss(r_a: torch.Tensor, r_b: torch.Tensor, p_a: torch.Tensor) -> torch.Tensor:
    d = r_a - r_b
    return -(p_a * F.logsigmoid(d) + (1 - p_a) * F.logsigmoid(-d)).mean()


@torch.no_grad()
def reference_logprobs(model: nn.Module, rows: Sequence[Row], pad_id: int, batch_size: int = 64) -> torch.Tensor:
    """log π_ref of each row under the model as it is now (the frozen reference, computed once)."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for s in range(0, len(rows), batch_size):
        ids, labels = pad_batch(rows[s:s + batch_size], pad_id)
        out.append(sequence_logprobs(model, ids.to(device), labels.to(device)).cpu())
    return torch.cat(out)


def preferred_nll(lp_a: torch.Tensor, lp_b: torch.Tensor, n_a: torch.Tensor, n_b: torch.Tensor,
                  p_a: torch.Tensor) -> torch.Tensor:
    """Mean per-token NLL of the preferred reply, weighted by label confidence (ties weigh nothing)."""
    w_a, w_b = (2 * p_a - 1).clamp(min=0), (1 - 2 * p_a).clamp(min=0)
    return -(w_a * lp_a / n_a.clamp(min=1) + w_b * lp_b / n_b.clamp(min=1)).mean()


def train_dpo(model: nn.Module, chosen: Sequence[Row], rejected: Sequence[Row], p_chosen: Sequence[float],
              pad_id: int, beta: float, cfg: OptimConfig, nll_weight: float = 0.0) -> list[float]:
    """Soft-label DPO in place. `p_chosen[i]` = P(chosen[i] preferred); the reference is the model at entry.

    `nll_weight` > 0 adds that times `preferred_nll` (see the module docstring)."""
    if not chosen or len(chosen) != len(rejected) or len(chosen) != len(p_chosen):
        raise InputError(f"DPO needs equal, non-empty lists of pairs and labels; got {len(chosen)} chosen, "
                         f"{len(rejected)} rejected, {len(p_chosen)} labels")
    device = next(model.parameters()).device
    ref_a = reference_logprobs(model, chosen, pad_id)
    ref_b = reference_logprobs(model, rejected, pad_id)
    p = torch.tensor(list(p_chosen), dtype=torch.float32)

    def step(batch: list[int]) -> torch.Tensor:
        ids, labels = pad_batch([chosen[i] for i in batch] + [rejected[i] for i in batch], pad_id)
        labels = labels.to(device)
        lp = sequence_logprobs(model, ids.to(device), labels)
        k = len(batch)
        loss = soft_dpo_loss(lp[:k], lp[k:], ref_a[batch].to(device), ref_b[batch].to(device),
                             p[batch].to(device), beta)
        if nll_weight:
            n = (labels[:, 1:] != IGNORE).sum(dim=1).float()
            loss = loss + nll_weight * preferred_nll(lp[:k], lp[k:], n[:k], n[k:], p[batch].to(device))
        return loss

    return optimise(model, len(chosen), cfg, step)


class RewardModel(nn.Module):
    """A causal LM body with a scalar head read at each sequence's last real token."""

    def __init__(self, body: nn.Module, width: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(width, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self._hidden: torch.Tensor | None = None
        # Both scalelab's Llama and HF's name the final norm `model.norm`: its output is the last hidden state.
        body.model.norm.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self._hidden = output

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        model_logits(self.body, ids)
        assert self._hidden is not None
        last = self._hidden[torch.arange(ids.shape[0], device=ids.device), lengths - 1]
        return self.head(last.float()).squeeze(-1)


def _reward_batch(rm: RewardModel, rows: Sequence[Row], pad_id: int) -> torch.Tensor:
    device = next(rm.parameters()).device
    ids, _ = pad_batch(rows, pad_id)
    lengths = torch.tensor([len(r[0]) for r in rows])
    return rm(ids.to(device), lengths.to(device))


def train_reward_model(rm: RewardModel, a: Sequence[Row], b: Sequence[Row], p_a: Sequence[float], pad_id: int,
                       cfg: OptimConfig) -> list[float]:
    p = torch.tensor(list(p_a), dtype=torch.float32)

    def step(batch: list[int]) -> torch.Tensor:
        r = _reward_batch(rm, [a[i] for i in batch] + [b[i] for i in batch], pad_id)
        k = len(batch)
        return soft_bradley_terry_loss(r[:k], r[k:], p[batch].to(r.device))

    return optimise(rm, len(a), cfg, step)


@torch.no_grad()
def rewards(rm: RewardModel, rows: Sequence[Row], pad_id: int, batch_size: int = 64) -> list[float]:
    rm.eval()
    out: list[float] = []
    for s in range(0, len(rows), batch_size):
        out.extend(_reward_batch(rm, rows[s:s + batch_size], pad_id).tolist())
    return out
