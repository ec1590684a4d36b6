"""Universality: do two models learn the same features? SAE features vs MLP neurons, matched across models.

Towards Monosemanticity (Bricken et al. 2023) trained SAEs on two transformers that differ only in their seed
and matched every feature of one to its most correlated feature in the other, by the Pearson correlation of
their activations over the same tokens; features matched far better than the models' neurons did. Here the
same: both models read the same held-out token rows (positions ≥ 1, so they need one tokenizer), each unit of A
gets its best match in B, and the summary is the median best-match correlation, for SAE features and for the
MLP neurons of the SAE's layer. A SwiGLU neuron's sign is arbitrary, so neurons match by |correlation| (which
can only help them). Units firing on fewer than `min_fires` tokens are left out. With the world's concept
labels, each unit also gets its best concept (by F1, `concepts`), and the share of matched pairs whose two
units carry the same concept is set beside the share a random pairing would give.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scalelab.errors import InputError
from scalelab.interp.concepts import neuron_firing, score_against_concepts, signed
from scalelab.interp.sae import SAE
from scalelab.interp.sites import n_layers, parse_site, read_sites


@torch.no_grad()
def unit_activations(model: nn.Module, sae: SAE, site: str, ids: torch.Tensor,
                     batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(SAE features (N, F), MLP neurons of the site's layer (N, n)) over positions ≥ 1 of `ids`."""
    s = parse_site(site, n_layers(model))
    neuron_site = parse_site(f"mlp_hidden.{s.layer}", n_layers(model))
    feats, neurons = [], []
    for start in range(0, len(ids), batch_size):
        acts = read_sites(model, [s, neuron_site], ids[start:start + batch_size])
        feats.append(sae.encode(acts[s.name][:, 1:].float()).flatten(0, 1))
        neurons.append(acts[neuron_site.name][:, 1:].float().flatten(0, 1))
    return torch.cat(feats), torch.cat(neurons)


def best_match(a: torch.Tensor, b: torch.Tensor, alive_a: torch.Tensor, alive_b: torch.Tensor,
               absolute: bool = False, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """For each live column of `a` (N, Fa): the highest Pearson correlation with a live column of `b` (N, Fb) and
    its index (|correlation| when `absolute`); dead columns of `a` get NaN and -1."""
    def standardise(x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        x = x - x.mean(0)
        return x / x.norm(dim=0).clamp_min(1e-12)

    zb = standardise(b[:, alive_b])
    b_index = torch.nonzero(alive_b).squeeze(-1)
    corr = torch.full((a.shape[1],), float("nan"), dtype=torch.float64)
    index = torch.full((a.shape[1],), -1, dtype=torch.long)
    live = torch.nonzero(alive_a).squeeze(-1)
    for s in range(0, len(live), chunk):
        cols = live[s:s + chunk]
        c = standardise(a[:, cols]).T @ zb
        if absolute:
            c = c.abs()
        best, arg = c.max(dim=1)
        corr[cols], index[cols] = best, b_index[arg]
    return corr, index


def _stats(corr: torch.Tensor) -> dict[str, Any]:
    v = corr[~torch.isnan(corr)]
    if len(v) == 0:
        return {"units": 0}
    return {"units": len(v), "median": round(float(v.median()), 4), "mean": round(float(v.mean()), 4),
            "frac_above_0.5": round(float((v > 0.5).float().mean()), 4),
            "frac_above_0.7": round(float((v > 0.7).float().mean()), 4)}


def _concepts_of(active: torch.Tensor, labels: torch.Tensor, concepts: list[str], paired: bool,
                 min_fires: int) -> torch.Tensor:
    """Each unit's best concept id (-1 where it fired fewer than `min_fires` times on labelled tokens)."""
    _, scores = score_against_concepts(active, labels, concepts, paired=paired)
    n = len(scores["concept"])
    fires = active[labels >= 0].sum(0)
    if paired:
        fires = torch.maximum(fires[:n], fires[n:])
    return torch.where(fires >= min_fires, scores["concept"], torch.full_like(scores["concept"], -1))


def label_agreement(concept_a: torch.Tensor, concept_b: torch.Tensor, match: torch.Tensor) -> dict[str, Any]:
    """Share of matched pairs (both units labelled) that carry the same concept, and the share by chance."""
    ok = (match >= 0) & (concept_a >= 0)
    ok[ok.clone()] = concept_b[match[ok]] >= 0
    if not ok.any():
        return {"pairs": 0}
    ca, cb = concept_a[ok], concept_b[match[ok]]
    n = max(int(concept_a.max()), int(concept_b.max())) + 1
    pa = torch.bincount(ca, minlength=n).double() / len(ca)
    pb = torch.bincount(concept_b[concept_b >= 0], minlength=n).double()
    pb = pb / pb.sum()
    return {"pairs": int(ok.sum()), "agree": round(float((ca == cb).double().mean()), 4),
            "chance": round(float((pa * pb).sum()), 4)}


def compare(units_a: tuple[torch.Tensor, torch.Tensor], units_b: tuple[torch.Tensor, torch.Tensor],
            labels: torch.Tensor | None = None, concepts: list[str] | None = None,
            min_fires: int = 5) -> dict[str, Any]:
    """Best-match correlations A → B of SAE features and of neurons, and matched pairs' concept agreement."""
    (fa, na), (fb, nb) = units_a, units_b
    if len(fa) != len(fb):
        raise InputError(f"the two models read {len(fa)} and {len(fb)} tokens; they must read the same rows with "
                         "one tokenizer")
    alive_fa, alive_fb = (fa > 0).sum(0) >= min_fires, (fb > 0).sum(0) >= min_fires
    alive_na, alive_nb = na.std(0) > 0, nb.std(0) > 0
    f_corr, f_idx = best_match(fa, fb, alive_fa, alive_fb)
    n_corr, n_idx = best_match(na, nb, alive_na, alive_nb, absolute=True)
    out: dict[str, Any] = {"features": {**_stats(f_corr), "of": fa.shape[1]},
                           "neurons": {**_stats(n_corr), "of": na.shape[1], "matched_by": "|correlation|"},
                           "tokens": len(fa), "min_fires": min_fires,
                           "feature_best_corr": [round(float(c), 4) for c in f_corr[~torch.isnan(f_corr)]],
                           "neuron_best_corr": [round(float(c), 4) for c in n_corr[~torch.isnan(n_corr)]]}
    if labels is not None and concepts is not None:
        lab = labels[:, 1:].reshape(-1)
        density = float((fa > 0).float().mean(0)[alive_fa].mean()) if alive_fa.any() else 0.01
        ca = _concepts_of(fa > 0, lab, concepts, False, min_fires)
        cb = _concepts_of(fb > 0, lab, concepts, False, min_fires)
        out["features"]["labels"] = label_agreement(ca, cb, f_idx)
        na_on, nb_on = neuron_firing(signed(na), density), neuron_firing(signed(nb), density)
        cna = _concepts_of(na_on, lab, concepts, True, min_fires)
        cnb = _concepts_of(nb_on, lab, concepts, True, min_fires)
        out["neurons"]["labels"] = label_agreement(cna, cnb, n_idx)
    return out
