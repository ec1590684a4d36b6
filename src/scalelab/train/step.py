"""One optimiser step, shared by `pretrain` and the throughput benchmark so both time the same code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """bf16 (or other) autocast on `device`, or nothing for plain fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


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
