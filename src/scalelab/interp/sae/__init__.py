"""The SAE registry: architecture name → class, one module per architecture (SAELens's pattern).

`make_sae(SAEConfig(arch=...))` builds one; an unknown name lists the valid ones. A new architecture is
a subclass of `SAE` in its own module plus one line here.
"""

from __future__ import annotations

from scalelab.errors import InputError
from scalelab.interp.sae.base import SAE, SAEConfig
from scalelab.interp.sae.batchtopk import BatchTopKSAE
from scalelab.interp.sae.jumprelu import JumpReLUSAE
from scalelab.interp.sae.relu import ReluSAE
from scalelab.interp.sae.topk import TopKSAE

ARCHITECTURES: dict[str, type[SAE]] = {
    "relu": ReluSAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "jumprelu": JumpReLUSAE,
}


def make_sae(cfg: SAEConfig) -> SAE:
    if cfg.arch not in ARCHITECTURES:
        raise InputError(f"unknown SAE architecture {cfg.arch!r}; valid: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[cfg.arch](cfg)


__all__ = ["ARCHITECTURES", "SAE", "SAEConfig", "make_sae"]
