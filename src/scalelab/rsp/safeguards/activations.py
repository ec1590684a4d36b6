"""Texts → one pooled activation vector each, read at a residual-stream site through `interp.sites` hooks.

Classifier safeguards look at what the model computes about a text, not at its words. Each text is
tokenized with the model's BOS in front (as in pretraining), run up to the site (the forward stops
there), and its per-token activations at positions ≥ 1 are pooled: mean and max over the text's
tokens, concatenated, so a long reply with one hazardous clause still moves the max half. Position 0
is left out because the attention sink there dwarfs every other position (NOTES.md). An optional
per-token `transform` (an SAE's encoder) is applied before pooling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from scalelab.errors import InputError
from scalelab.interp.sites import Site, read_site

POOLS = ("mean", "max")


def tokenize_texts(tokenizer: Any, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids with BOS (when the tokenizer has one), cut to `max_len`; an empty text keeps just BOS."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    rows = [(bos + tokenizer(t, add_special_tokens=False)["input_ids"])[:max_len] for t in texts]
    return [r if len(r) >= 2 else r + [tokenizer.eos_token_id or 0] * (2 - len(r)) for r in rows]


@torch.no_grad()
def pooled_activations(model: nn.Module, tokenizer: Any, site: Site, texts: Sequence[str], *,
                       max_len: int = 64, batch_size: int = 32, pools: Sequence[str] = POOLS,
                       transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """(len(texts), len(pools) · width) fp32: each pool over positions ≥ 1 of each text, concatenated."""
    unknown = [p for p in pools if p not in POOLS]
    if unknown:
        raise InputError(f"unknown pooling {unknown}; choose from {', '.join(POOLS)}")
    rows = tokenize_texts(tokenizer, texts, max_len)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(rows), batch_size):
        chunk = rows[s:s + batch_size]
        width = max(len(r) for r in chunk)
        # Right padding: a causal model's activations at real positions do not see the pad tokens after them.
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in chunk], device=device)
        mask = torch.tensor([[0] + [1] * (len(r) - 1) + [0] * (width - len(r)) for r in chunk],
                            dtype=torch.bool, device=device)
        acts = read_site(model, site, ids).float()
        if transform is not None:
            acts = transform(acts)
        m = mask[..., None]
        pooled = []
        for p in pools:
            if p == "mean":
                pooled.append((acts * m).sum(1) / m.sum(1).clamp_min(1))
            else:
                pooled.append(acts.masked_fill(~m, float("-inf")).amax(1))
        out.append(torch.cat(pooled, dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)
