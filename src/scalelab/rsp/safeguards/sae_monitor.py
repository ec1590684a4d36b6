"""The SAE-feature monitor: flag hazardous text when the SAE features that track the hazard concept fire.

Where the interpretability stage has trained an SAE on the served model, its features offer a monitor
that can be read and audited feature by feature, unlike a dense probe direction. Fitting uses the
probe's training split only: each text's SAE feature activations are max-pooled over its tokens
(positions ≥ 1, `activations.pooled_activations`), every feature is ranked by its ROC AUC for the hazard
label, and the monitor's score is the sum of the top-k features' pooled activations, each divided by its
training standard deviation so one loud feature does not drown the others. k (from `K_CHOICES`) and the
threshold are the pair with the best training F1. It is then measured on the same held-out prompts and
replies as the probe, so the two can be read side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scalelab.errors import InputError
from scalelab.interp.saelens import load_sae, site_of
from scalelab.interp.sites import n_layers, parse_site
from scalelab.rsp.safeguards.activations import pooled_activations
from scalelab.rsp.safeguards.data import LabelledTexts, heldout_prompts, heldout_replies, training_texts
from scalelab.rsp.safeguards.probe import binary_metrics

K_CHOICES = (1, 2, 4, 8, 16)


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each column of `scores` (N, F) for 0/1 `labels` (N,), ties counted half (Mann-Whitney U)."""
    y = labels.bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes; got {n_pos} positive and {n_neg} negative")
    from scipy.stats import rankdata

    # Mid-ranks, so tied activations (mostly exact zeros of a sparse feature) count half.
    ranks = torch.from_numpy(rankdata(scores.double().numpy(), axis=0))
    return (ranks[y].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def best_threshold(score: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of `score >= threshold` over the observed score values."""
    order = score.argsort(descending=True)
    s, y = score[order], torch.as_tensor(labels)[order].float()
    tp = y.cumsum(0)
    flagged = torch.arange(1, len(s) + 1, dtype=torch.float32)
    f1 = 2 * tp / (flagged + y.sum())
    # A cut is only possible after the last of a run of equal scores.
    last_of_run = torch.ones(len(s), dtype=torch.bool)
    last_of_run[:-1] = s[1:] != s[:-1]
    f1 = torch.where(last_of_run, f1, torch.zeros_like(f1))
    i = int(f1.argmax())
    return float(s[i]), float(f1[i])


@dataclass
class SAEMonitor:
    features: list[int]
    scale: torch.Tensor          # training std of each chosen feature's pooled activation
    threshold: float
    aucs: list[float]
    train_f1: float

    def score(self, pooled: torch.Tensor) -> torch.Tensor:
        return (pooled[:, self.features] / self.scale).sum(1)

    def predict(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.score(pooled) >= self.threshold


def fit_monitor(pooled: torch.Tensor, labels: Sequence[int], k_choices: Sequence[int] = K_CHOICES) -> SAEMonitor:
    """Choose features by AUC and (k, threshold) by F1 on training texts' max-pooled feature activations."""
    y = torch.as_tensor(labels)
    alive = pooled.std(0) > 0
    auc = torch.where(alive, roc_auc(pooled, y), torch.zeros(pooled.shape[1]))
    ranked = auc.argsort(descending=True).tolist()
    best: SAEMonitor | None = None
    for k in k_choices:
        chosen = [j for j in ranked[:k] if alive[j]]
        if not chosen:
            continue
        scale = pooled[:, chosen].std(0).clamp_min(1e-6)
        mon = SAEMonitor(chosen, scale, 0.0, [round(float(auc[j]), 4) for j in chosen], 0.0)
        mon.threshold, mon.train_f1 = best_threshold(mon.score(pooled), y)
        if best is None or mon.train_f1 > best.train_f1:
            best = mon
    if best is None:
        raise InputError("no SAE feature fired on the training texts; the SAE does not match this model")
    return best


def measure_sae_monitor(model: nn.Module, tokenizer: Any, sae_dir: Path, world_dir: Path,
                        limit: int | None = None, max_len: int = 64, max_per_source: int | None = 80,
                        seed: int = 0) -> dict[str, Any]:
    """Fit the monitor on the training split and report held-out precision/recall for prompts and replies."""
    sae, cfg = load_sae(sae_dir)
    site = parse_site(site_of(cfg), n_layers(model))
    width = _site_width(model, tokenizer, site)
    if width != sae.cfg.d_in:
        raise InputError(f"the SAE in {sae_dir} reads {sae.cfg.d_in}-dim activations but {site.name} of this model "
                         f"is {width}-dim; pass the SAE trained on this model (RUN/interp/d*/)")

    def pooled(texts: list[str]) -> torch.Tensor:
        return pooled_activations(model, tokenizer, site, texts, max_len=max_len, pools=("max",),
                                  transform=sae.encode)

    train = training_texts(world_dir, max_per_source=max_per_source, seed=seed)
    mon = fit_monitor(pooled(train.texts), train.labels)

    def evaluate(data: LabelledTexts) -> dict[str, Any]:
        return binary_metrics(mon.predict(pooled(data.texts)), data.labels)

    return {"input": evaluate(heldout_prompts(world_dir, limit)), "output": evaluate(heldout_replies(world_dir, limit)),
            "site": site.name, "sae_dir": str(sae_dir), "features": mon.features, "feature_aucs": mon.aucs,
            "threshold": mon.threshold, "train_f1": mon.train_f1, "d_sae": sae.cfg.d_sae}


def _site_width(model: nn.Module, tokenizer: Any, site: Any) -> int:
    return int(pooled_activations(model, tokenizer, site, ["a"], pools=("max",)).shape[1])
