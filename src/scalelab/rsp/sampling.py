"""Sampling in which every row draws from its own seed, so a sample never depends on what shares its batch.

`model.generate` samples a whole batch from one random generator, so a row's draw depends on the rows
before it; the Inspect provider batches whatever requests happen to be in flight, which would make a
sampled eval (best-of-n) come out differently on every run. The Gumbel-max trick samples from
softmax(l / T) as argmax(l / T + G), with G standard Gumbel noise: drawing G for each row from that row's
own generator and decoding greedily gives every row the sample its seed fixes, in any batch, because
greedy decoding is itself batch-independent (`model.generate` masks each row's padding). No top-p here:
the capability evals sample from the full distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class RowSeededNoise(torch.nn.Module):
    """A Llama whose last-position logits come out as l / T + Gumbel noise, the noise drawn per row and step
    from the row's own generator (see the module docstring). Decode it greedily with `model.generate`."""

    def __init__(self, model: torch.nn.Module, seeds: Sequence[int], temperature: float) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 to sample; got {temperature}")
        self.model = model
        self.cfg = model.cfg  # model.generate sizes its KV cache from it
        self.temperature = temperature
        device = next(model.parameters()).device
        self.generators = [torch.Generator(device).manual_seed(int(s)) for s in seeds]

    def forward(self, idx: torch.Tensor, **kwargs) -> torch.Tensor:
        last = self.model(idx, **kwargs)[:, -1].float() / self.temperature
        if last.shape[0] != len(self.generators):
            raise ValueError(f"a batch of {last.shape[0]} rows needs as many seeds; got {len(self.generators)}")
        u = torch.stack([torch.rand(last.shape[-1], generator=g, device=last.device) for g in self.generators])
        gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-7)))
        return (last + gumbel)[:, None]


@torch.no_grad()
def sample_rows(model: torch.nn.Module, prompts: list[list[int]], seeds: Sequence[int], max_new_tokens: int,
                temperature: float, stop_ids: Sequence[int] = ()) -> list[list[int]]:
    """New tokens for each prompt, sampled at `temperature`, row i determined by `seeds[i]` alone."""
    from scalelab.model.generate import generate

    return generate(RowSeededNoise(model, seeds, temperature), prompts, max_new_tokens, temperature=0.0,
                    stop_ids=stop_ids)
