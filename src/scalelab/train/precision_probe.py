"""Training precision chosen by timing the training step itself, not only its matrix products.

`model.precision.matmul_rates` times a model's projections, which decides well where they are the step. On the
tiny ladder they are not: on an Intel Xeon with AMX the products run 6× faster in bf16, yet a d2 step at the
data-constrained experiments' batch of 2 × 256 tokens ran slower under bf16 autocast than in fp32 (its casts,
attention and elementwise work cost more than the products save; BENCHMARKS.md, "Precision by measurement").
So a single-process CPU run with `train.dtype=auto` times forward + backward of its own freshly built model on a
batch of its own size, in both precisions, alternating, and keeps the median of each; no optimiser step is taken
and the gradients are dropped, so training starts from exactly the model it would have started from. The result
is cached per host, model shape and batch like the matmul probe's (`choose_precision(probe=...)`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from scalelab.model.config import ModelConfig
from scalelab.model.flops import flops_per_token
from scalelab.model.precision import Measure, Shape, median_seconds
from scalelab.train.step import forward_backward

DTYPES = {"fp32": None, "bf16": torch.bfloat16}
STEP_MARGIN = 1.1
"""bf16 must make the step this much faster. Lower than the matmul benchmark's 1.2, which also had to cover the
gap between a model's products and its whole step: timing the step itself leaves only the noise between repeats
(±5% here). Measured on the AMX host: d2–d5 steps at the tiny batch ran 1.05 / 1.07 / 1.15 / 1.20× faster in bf16,
and the tiny run's pretraining 1.11 / 1.07 / 1.16 / 1.31× (BENCHMARKS.md)."""


def step_probe_name(cfg: ModelConfig, batch: int, seq_len: int) -> str:
    """The cache key's prefix: what, beyond the matmul shapes, sets the step's cost."""
    return f"train-step depth {cfg.depth} heads {cfg.n_heads} batch {batch} seq {seq_len}"


def step_measure(model: nn.Module, cfg: ModelConfig, batch: int, seq_len: int, device: torch.device,
                 reps: int = 3) -> Measure:
    """A `Measure` for `choose_precision` that times `model`'s training step (GFLOP/s of training FLOPs)."""

    def measure(_shapes: Sequence[Shape]) -> dict[str, float]:
        gen = torch.Generator().manual_seed(0)
        x, y = torch.randint(0, cfg.vocab_size, (2, batch, seq_len), generator=gen).to(device)
        params = [p for p in model.parameters() if p.requires_grad]

        def step(amp: torch.dtype | None) -> Callable[[], None]:
            def run() -> None:
                forward_backward(model, params, x, y, device, amp, grad_clip=0.0)
                for p in params:
                    p.grad = None
            return run

        try:
            seconds = median_seconds({name: step(amp) for name, amp in DTYPES.items()}, reps)
        finally:
            for p in params:
                p.grad = None
        flops = flops_per_token(cfg, seq_len) * batch * seq_len
        return {name: flops / s / 1e9 for name, s in seconds.items()}

    return measure
