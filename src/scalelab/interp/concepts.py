"""Ground-truth monosemanticity: score SAE features, and raw neurons beside them, against world concepts.

On the world corpus every token carries the concept it expresses (`text.token_concepts`), so "is this
feature about one thing?" has an exact answer. A unit (SAE feature or neuron) is *on* for a token when
it fires (SAE: activation > 0; neuron: activation above its own quantile that gives it the SAE's mean
firing density, so both sides make equally many binary calls). For each unit and concept:
precision = P(concept | unit on), recall = P(unit on | concept); the unit's best concept maximises F1.
The summary counts units that are ≥ `precise_at` precise for one concept (among units that fired at
least `min_fires` times) and lists the concepts that no unit captures (no unit with F1 ≥ `captured_f1`)
— the paper's features-vs-neurons comparison, measured against truth.

That native rule is not the same rule on both sides (a feature's "on" is its own sparsity, a neuron's is
forced to one density), so the comparison is also made with one rule for every unit (`matched`): a unit is
on where its activation is positive and above its own (1 − d) quantile, and d is picked per unit from
`DENSITIES` to maximise the best-concept F1 (the best-threshold rule of sparse probing).

A SwiGLU hidden unit silu(g)·u has no preferred sign (u flips it freely), so a neuron may mean its concept on
either side: neurons are scored as two candidate units, +h and −h, each under the same rule, and each neuron
keeps its better side (by best-concept F1). A feature is one-signed by construction (its activation is ≥ 0).
"""

from __future__ import annotations

from typing import Any

import torch


def unit_concept_counts(active: torch.Tensor, labels: torch.Tensor, n_concepts: int) -> torch.Tensor:
    """(units, concepts) co-occurrence counts from a boolean (tokens, units) matrix and labels (tokens,)."""
    keep = labels >= 0
    onehot = torch.nn.functional.one_hot(labels[keep], n_concepts).float()
    return active[keep].float().T @ onehot


def score_units(counts: torch.Tensor, fires: torch.Tensor, concept_sizes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per unit: best concept (by F1), its precision, recall and F1."""
    precision = counts / fires.clamp_min(1)[:, None]
    recall = counts / concept_sizes.clamp_min(1)[None, :]
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    best = f1.argmax(1)
    pick = best[:, None]
    return {"concept": best, "precision": precision.gather(1, pick)[:, 0],
            "recall": recall.gather(1, pick)[:, 0], "f1": f1.gather(1, pick)[:, 0], "best_f1_per_concept":
            f1.max(0).values}


def summarise(scores: dict[str, torch.Tensor], fires: torch.Tensor, concepts: list[str], n_units: int,
              min_fires: int = 5, precise_at: float = 0.9, captured_f1: float = 0.5) -> dict[str, Any]:
    alive = fires >= min_fires
    precise = alive & (scores["precision"] >= precise_at)
    best_f1 = scores["best_f1_per_concept"]
    precise_concepts = sorted({concepts[int(c)] for c in scores["concept"][precise]})
    return {
        "units": n_units, "units_scored": int(alive.sum()),
        "precise_units": int(precise.sum()), "precise_frac": float(precise.sum()) / max(1, n_units),
        "mean_best_f1": float(scores["f1"][alive].mean()) if alive.any() else 0.0,
        "concepts_with_precise_unit": len(precise_concepts),
        "uncaptured_concepts": [c for i, c in enumerate(concepts) if best_f1[i] < captured_f1],
        "captured_concepts": sum(1 for i in range(len(concepts)) if best_f1[i] >= captured_f1),
        "thresholds": {"min_fires": min_fires, "precise_at": precise_at, "captured_f1": captured_f1},
    }


def _better_sign(scores: dict[str, torch.Tensor], fires: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Units laid out as [+h_0..+h_n, −h_0..−h_n] → per neuron, the side with the higher best-concept F1 (and
    `negative`: whether that was −h)."""
    n = len(fires) // 2
    neg = scores["f1"][n:] > scores["f1"][:n]
    out = {k: torch.where(neg, scores[k][n:], scores[k][:n]) for k in ("concept", "precision", "recall", "f1")}
    out["best_f1_per_concept"] = scores["best_f1_per_concept"]  # already the max over both sides
    out["negative"] = neg
    return out, torch.where(neg, fires[n:], fires[:n])


def signed(acts: torch.Tensor) -> torch.Tensor:
    """(tokens, n) neuron activations → (tokens, 2n): +h then −h, the layout `paired=True` reads."""
    return torch.cat([acts, -acts], dim=1)


def score_against_concepts(active: torch.Tensor, labels: torch.Tensor, concepts: list[str], paired: bool = False,
                           **kw: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(summary, per-unit scores) for a boolean (tokens, units) firing matrix and token labels; `paired`: the
    units are a neuron layer's two sides (`signed`), and each neuron keeps its better one."""
    if active.shape[0] != labels.shape[0]:
        raise ValueError(f"{active.shape[0]} activation rows but {labels.shape[0]} labels")
    present = labels[labels >= 0]
    sizes = torch.bincount(present, minlength=len(concepts)).float()
    counts = unit_concept_counts(active, labels, len(concepts))
    fires = active[labels >= 0].sum(0).float()
    scores = score_units(counts, fires, sizes)
    if paired:
        scores, fires = _better_sign(scores, fires)
    summary = summarise(scores, fires, list(concepts), len(fires), **kw)
    if paired:
        summary["negative_side_units"] = int(scores["negative"].sum())
    # Concepts absent from the scored text cannot be captured; do not list them as misses.
    absent = {concepts[i] for i in range(len(concepts)) if sizes[i] == 0}
    summary["uncaptured_concepts"] = [c for c in summary["uncaptured_concepts"] if c not in absent]
    summary["concepts_present"] = len(concepts) - len(absent)
    summary["captured_concepts"] = summary["concepts_present"] - len(summary["uncaptured_concepts"])
    return summary, scores


DENSITIES = (0.001, 0.003, 0.01, 0.03, 0.1)


def _best_f1_over_densities(acts: torch.Tensor, labels: torch.Tensor, n_concepts: int,
                            densities: tuple[float, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(fires, per-unit scores) with each unit binarised at the density that gives it the best F1."""
    keep = labels >= 0
    acts, lab = acts[keep].float(), labels[keep]
    sizes = torch.bincount(lab, minlength=n_concepts).float()
    best: dict[str, torch.Tensor] | None = None
    best_fires = torch.zeros(acts.shape[1])
    ordered = acts.sort(dim=0).values  # one sort serves every density (kthvalue per density cost 5x more)
    n = len(acts)
    for d in densities:
        thresh = ordered[min(max(1, round((1.0 - d) * n)), n) - 1]
        active = (acts > thresh[None, :]) & (acts > 0)
        fires = active.sum(0).float()
        scores = score_units(unit_concept_counts(active, lab, n_concepts), fires, sizes)
        if best is None:
            best, best_fires = scores, fires
            continue
        better = scores["f1"] > best["f1"]
        for key in ("concept", "precision", "recall", "f1"):
            best[key] = torch.where(better, scores[key], best[key])
        best["best_f1_per_concept"] = torch.maximum(best["best_f1_per_concept"], scores["best_f1_per_concept"])
        best_fires = torch.where(better, fires, best_fires)
    assert best is not None
    return best_fires, best


def score_matched(acts: torch.Tensor, labels: torch.Tensor, concepts: list[str],
                  densities: tuple[float, ...] = DENSITIES, paired: bool = False, **kw: Any) -> dict[str, Any]:
    """Summary for real-valued unit activations (tokens, units) under the one-rule-for-all thresholds (`paired`:
    as in `score_against_concepts`)."""
    if acts.shape[0] != labels.shape[0]:
        raise ValueError(f"{acts.shape[0]} activation rows but {labels.shape[0]} labels")
    fires, scores = _best_f1_over_densities(acts, labels, len(concepts), densities)
    if paired:
        scores, fires = _better_sign(scores, fires)
    summary = summarise(scores, fires, concepts, len(fires), **kw)
    if paired:
        summary["negative_side_units"] = int(scores["negative"].sum())
    present = torch.bincount(labels[labels >= 0], minlength=len(concepts)) > 0
    summary["uncaptured_concepts"] = [c for i, c in enumerate(concepts)
                                      if present[i] and c in summary["uncaptured_concepts"]]
    summary["concepts_present"] = int(present.sum())
    summary["captured_concepts"] = summary["concepts_present"] - len(summary["uncaptured_concepts"])
    summary["densities"] = list(densities)
    return summary


def neuron_firing(acts: torch.Tensor, density: float) -> torch.Tensor:
    """Binarise neurons (tokens, n) at each neuron's (1 − density) quantile, so each fires at `density`."""
    n = len(acts)
    k = min(max(1, round((1.0 - density) * n)), n)  # kthvalue: torch.quantile refuses large inputs
    thresh = acts.float().kthvalue(k, dim=0).values
    return acts > thresh[None, :]


@torch.no_grad()
def score_sae_and_neurons(model: torch.nn.Module, sae: torch.nn.Module, site_name: str, ids: torch.Tensor,
                          labels: torch.Tensor, concepts: list[str], batch_size: int = 16) -> dict[str, Any]:
    """SAE features and the same layer's MLP neurons, scored against concept labels (positions ≥ 1)."""
    from scalelab.interp.sites import n_layers, parse_site, read_site

    site = parse_site(site_name, n_layers(model))
    neuron_site = parse_site(f"mlp_hidden.{site.layer}", n_layers(model))
    feats, neurons = [], []
    for s in range(0, len(ids), batch_size):
        batch = ids[s:s + batch_size]
        feats.append(sae.encode(read_site(model, site, batch)[:, 1:].float()).flatten(0, 1))
        neurons.append(read_site(model, neuron_site, batch)[:, 1:].float().flatten(0, 1))
    lab = labels[:, 1:].reshape(-1)
    feat_acts = torch.cat(feats)
    active = feat_acts > 0
    sae_summary, sae_scores = score_against_concepts(active, lab, concepts)
    fired = active.float().mean(0)
    density = float(fired[fired > 0].mean()) if (fired > 0).any() else 0.01
    neuron_acts = signed(torch.cat(neurons))
    neuron_summary, _ = score_against_concepts(neuron_firing(neuron_acts, density), lab, concepts, paired=True)
    matched = {"features": score_matched(feat_acts, lab, concepts),
               "neurons": score_matched(neuron_acts, lab, concepts, paired=True)}
    scored = torch.nonzero(active[lab >= 0].sum(0) >= sae_summary["thresholds"]["min_fires"]).squeeze(-1)
    ranked = sorted(scored.tolist(), key=lambda j: (-float(sae_scores["precision"][j]),
                                                    -float(sae_scores["recall"][j])))
    top = [{"feature": j, "concept": concepts[int(sae_scores["concept"][j])],
            "precision": round(float(sae_scores["precision"][j]), 4),
            "recall": round(float(sae_scores["recall"][j]), 4)} for j in ranked[:12]]
    return {"features": sae_summary, "neurons": {**neuron_summary, "site": neuron_site.name, "signs": "both",
                                                 "firing_density": round(density, 5)},
            "matched": matched,
            "top_features": top, "tokens": int((lab >= 0).sum()), "positions": ">= 1 (position 0 excluded)",
            "best_precision": {"features": sae_scores["precision"].tolist()}}
