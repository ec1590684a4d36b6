"""The field's SAE metrics, computed as SAELens / SAEBench define them.

- FVU (fraction of variance unexplained, = normalised MSE): Σ‖x − x̂‖² / Σ‖x − x̄‖² over tokens.
- L0: mean number of active features per token.
- Dead / dense fractions: features that never fire on the evaluation tokens / fire on more than
  `dense_threshold` of them.
- CE loss recovered: the SAE's reconstruction is spliced into the forward pass in place of the site's
  activation; recovered = (CE_zero − CE_sae) / (CE_zero − CE_clean), where CE_zero zero-ablates the site
  instead. 1 means the SAE loses nothing, 0 means it is as bad as deleting the activation.
- KL: mean KL(clean ‖ spliced) of the next-token distributions.

Every metric covers positions ≥ `skip_positions` (1 by default: the BOS / attention-sink position is
neither replaced nor scored), and the result says so in `positions`. Later attention-sink rows (norm above
`max_norm_factor` x the median, `cache.massive_rows`) are left out of FVU/L0/dead and kept clean (not
replaced) when splicing, exactly as the cache leaves them out of training; results count them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.errors import InputError
from scalelab.interp.cache import MAX_NORM_FACTOR, check_finite, massive_rows
from scalelab.interp.sites import Site, logits_of, site_hook


@torch.no_grad()
def reconstruction_metrics(sae: nn.Module, acts: torch.Tensor, batch_size: int = 4096,
                           dense_threshold: float = 0.1,
                           max_norm_factor: float | None = MAX_NORM_FACTOR) -> dict[str, Any]:
    """FVU, MSE, L0, dead and dense fractions of `sae` on rows of activations (N, d_in), sinks left out."""
    check_finite(acts, "evaluation activations")
    massive = massive_rows(acts, max_norm_factor)
    acts = acts[~massive]
    mean = acts.mean(0)
    sse = sst = l0_sum = 0.0
    fires: torch.Tensor | None = None
    for s in range(0, len(acts), batch_size):
        x = acts[s:s + batch_size]
        f = sae.encode(x)
        recon = sae.decode(f)
        sse += float((recon - x).pow(2).sum())
        sst += float((x - mean).pow(2).sum())
        active = f > 0
        l0_sum += float(active.sum())
        counts = active.sum(0)
        fires = counts if fires is None else fires + counts
    n = len(acts)
    assert fires is not None
    density = fires.float() / n
    return {"fvu": sse / sst, "mse": sse / n, "l0": l0_sum / n,
            "dead_frac": float((density == 0).float().mean()),
            "dense_frac": float((density > dense_threshold).float().mean()),
            "n_tokens": n, "massive_rows_excluded": int(massive.sum())}


def _replace_from(skip: int, fn: Callable[[torch.Tensor], torch.Tensor],
                  max_norm_factor: float | None) -> Callable[[torch.Tensor], torch.Tensor]:
    def hook(x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        tail = x[:, skip:].float()
        keep = massive_rows(tail.reshape(-1, tail.shape[-1]), max_norm_factor).view(tail.shape[:-1])
        out[:, skip:] = torch.where(keep[..., None], tail, fn(tail)).to(x.dtype)
        return out
    return hook


@torch.no_grad()
def ce_recovered(model: nn.Module, sae: Callable[[torch.Tensor], torch.Tensor], site: Site,
                 batches: Iterable[torch.Tensor], skip_positions: int = 1,
                 max_norm_factor: float | None = MAX_NORM_FACTOR) -> dict[str, Any]:
    """CE loss clean / with the SAE spliced in / with the site zero-ablated, CE recovered and KL."""
    tot = {"clean": 0.0, "sae": 0.0, "zero": 0.0, "kl_sae": 0.0, "kl_zero": 0.0}
    n = 0
    for ids in batches:
        if ids.shape[1] <= skip_positions + 1:
            raise InputError(f"sequences of length {ids.shape[1]} leave nothing to score after skipping "
                             f"{skip_positions} position(s); use longer sequences")
        targets = ids[:, skip_positions + 1:].reshape(-1)

        def score(logits: torch.Tensor, targets: torch.Tensor = targets) -> tuple[torch.Tensor, torch.Tensor]:
            lp = F.log_softmax(logits[:, skip_positions:-1].float(), -1).reshape(-1, logits.shape[-1])
            return F.nll_loss(lp, targets, reduction="sum"), lp

        clean_sum, clean_lp = score(logits_of(model, ids))
        with site_hook(model, site, _replace_from(skip_positions, sae, max_norm_factor)):
            sae_sum, sae_lp = score(logits_of(model, ids))
        with site_hook(model, site, _replace_from(skip_positions, torch.zeros_like, max_norm_factor)):
            zero_sum, zero_lp = score(logits_of(model, ids))
        p = clean_lp.exp()
        tot["clean"] += float(clean_sum)
        tot["sae"] += float(sae_sum)
        tot["zero"] += float(zero_sum)
        tot["kl_sae"] += float((p * (clean_lp - sae_lp)).sum())
        tot["kl_zero"] += float((p * (clean_lp - zero_lp)).sum())
        n += targets.numel()
    if n == 0:
        raise ValueError("no token batches were given to ce_recovered")
    ce = {k: v / n for k, v in tot.items()}
    gap = ce["zero"] - ce["clean"]
    return {"ce_clean": ce["clean"], "ce_sae": ce["sae"], "ce_zero": ce["zero"],
            "ce_recovered": (ce["zero"] - ce["sae"]) / gap if gap else float("nan"),
            "kl_sae": ce["kl_sae"], "kl_zero": ce["kl_zero"], "n_tokens": n,
            "positions": f">= {skip_positions} (earlier positions kept clean and unscored; attention-sink rows "
                         f"above {max_norm_factor}x the median norm kept clean)"}
