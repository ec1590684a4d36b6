"""One optimiser step, shared by `pretrain` and the throughput benchmark so both time the same code.

Also the knowledge-distillation objective (Hinton et al. 2015, "Distilling the Knowledge in a Neural
Network"): with a frozen teacher, the student's loss is (1 − α)·CE(student, next token) +
α·T²·KL(softmax(teacher/T) ‖ softmax(student/T)). The T² keeps the soft term's gradient on the same
scale as the hard term's as T changes. It wraps the model's forward, so `pretrain` keeps one loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from scalelab.errors import InputError
from scalelab.model.precision import autocast_context


def forward_backward(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], params: Sequence[torch.Tensor],
                     x: torch.Tensor, y: torch.Tensor, device: torch.device, amp: torch.dtype | None,
                     grad_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and backward pass, then clip gradients; returns (loss, grad norm before clipping).

    The optimiser step is left to the caller so it can refuse a non-finite loss first.
    """
    with autocast_context(device, amp):
        loss = forward(x, y)
    loss.backward()
    if grad_clip <= 0:
        return loss, torch.zeros((), device=device)
    return loss, torch.nn.utils.clip_grad_norm_(params, grad_clip)


def apply_update(optimizer: torch.optim.Optimizer) -> None:
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@dataclass(frozen=True)
class Distillation:
    """Train against a teacher's logits as well as the next token (module docstring)."""

    teacher_dir: Path  # a HF folder written by `pretrain` (same tokenizer and vocabulary as the student)
    alpha: float = 0.5  # weight of the KL term; 0 is plain pretraining, 1 is pure distillation
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"distillation alpha={self.alpha} must be in [0, 1] (the weight of the KL term)")
        if not self.temperature > 0:
            raise InputError(f"distillation temperature={self.temperature} must be > 0")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      alpha: float, temperature: float) -> torch.Tensor:
    """(1 − α)·cross-entropy + α·T²·KL(teacher_T ‖ student_T), averaged over tokens, in nats."""
    vocab = student_logits.shape[-1]
    s = student_logits.float().reshape(-1, vocab)
    t = teacher_logits.float().reshape(-1, vocab)
    hard = F.cross_entropy(s, targets.reshape(-1))
    soft = F.kl_div(F.log_softmax(s / temperature, dim=-1), F.log_softmax(t / temperature, dim=-1),
                    log_target=True, reduction="batchmean")
    return (1.0 - alpha) * hard + alpha * temperature ** 2 * soft


def distillation_forward(forward: Callable[[torch.Tensor], torch.Tensor], teacher: torch.nn.Module,
                         distill: Distillation) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A `(x, y) -> loss` forward for `forward_backward` that distils `teacher` into the student."""
    teacher.eval().requires_grad_(False)

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = teacher(x)
        return distillation_loss(forward(x), teacher_logits, y, distill.alpha, distill.temperature)

    return loss
