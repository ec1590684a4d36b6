"""AdamW with weight decay only where it regularises, and the device of a run (its precision: `model.precision`).

Decay applies to the matrices inside the transformer blocks (attention and MLP projections). The
token embedding (and the lm_head, tied to it or not) and the RMSNorm gains are not decayed:
decaying a gain pulls it towards zero rather than towards "no effect", and decaying embeddings
penalises rare tokens, whose rows get few gradient updates to push back.
"""

from __future__ import annotations

import torch
from torch import nn

from scalelab.model.device import pick_device
from scalelab.train.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.AdamW:
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if id(p) in seen or not p.requires_grad:
            continue  # a tied weight appears under two names
        seen.add(id(p))
        in_block = ".layers." in f".{name}"
        (decay if in_block and p.dim() == 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    on_cuda = next(model.parameters()).device.type == "cuda"
    # fused is fastest on CUDA; on CPU fused and foreach measured the same (BENCHMARKS.md)
    return torch.optim.AdamW(groups, lr=lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8,
                             fused=on_cuda or None, foreach=None if on_cuda else True)


def resolve_device(cfg: TrainConfig) -> torch.device:
    return pick_device(cfg.device)
