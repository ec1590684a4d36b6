"""Linear probes per layer for the world's concepts: the linear representation hypothesis, measured.

For each concept group (entity type, relation, attribute, hazard step) the tokens labelled with one of its
concepts are read at every layer's residual stream (the embeddings, then each block's output), and a
multinomial logistic regression predicts the concept from the activation. Accuracy is *balanced* (the mean of
per-class recalls, class-weighted training), so a rare class such as the hazard step cannot be ignored: chance
is 1 / classes. Sequences, not tokens, are split into train and test, so no document is on both sides.

Each probe has two references. The *shuffled-label control*: the same probe trained on the training labels
permuted among the training tokens, scored against the true test labels, which is what the probe finds where
there is nothing to find (chance, unless it overfits). Selectivity = accuracy − control. And the *token-identity
baseline*: each test token gets the commonest training label of its token id (the global commonest for an
unseen id): in this world much of a concept is spelled by the token itself (a creature's name, a relation's
template words), so a layer represents the concept *in context* where its probe beats that lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.errors import InputError
from scalelab.interp.config import ProbeConfig
from scalelab.interp.sites import Site, n_layers, read_sites
from scalelab.world.lexicon import ENTITY_KINDS

HAZARD = "hazard_step"
# group -> which concept labels belong to it; hazard_step is hazard-step tokens vs every other labelled token.
GROUPS: dict[str, Callable[[str], bool]] = {
    "entity_type": lambda c: c in ENTITY_KINDS,
    "relation": lambda c: c.startswith("relation:"),
    "attribute": lambda c: c.startswith("attribute:"),
    HAZARD: lambda c: True,
}


@dataclass
class SoftmaxProbe:
    """p(class | x) = softmax(W·(x − μ)/σ + b)."""

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (((x.float() - self.mean) / self.std) @ self.weight + self.bias).argmax(-1)


def fit_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = 1e-3,
              max_iter: int = 100) -> SoftmaxProbe:
    """Class-balanced multinomial logistic regression, full batch with L-BFGS on standardised inputs."""
    x = x.float()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    counts = torch.bincount(y, minlength=n_classes).float()
    class_w = torch.where(counts > 0, 1.0 / (n_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    sample_w = class_w[y] / class_w[y].sum()
    w = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (sample_w * F.cross_entropy(z @ w + b, y, reduction="none")).sum() + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return SoftmaxProbe(w.detach(), b.detach(), mean, std)


def balanced_accuracy(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    """Mean recall over the classes present in `y`."""
    recalls = [float((pred[y == c] == c).float().mean()) for c in range(n_classes) if (y == c).any()]
    return sum(recalls) / len(recalls) if recalls else float("nan")


def token_baseline(train_ids: torch.Tensor, train_y: torch.Tensor, test_ids: torch.Tensor, n_classes: int,
                   ) -> torch.Tensor:
    """Predict each test token's class as the commonest training class of its token id (else the commonest)."""
    counts: dict[int, torch.Tensor] = {}
    for t, c in zip(train_ids.tolist(), train_y.tolist(), strict=True):
        counts.setdefault(t, torch.zeros(n_classes))[c] += 1
    overall = int(torch.bincount(train_y, minlength=n_classes).argmax())
    return torch.tensor([int(counts[t].argmax()) if t in counts else overall for t in test_ids.tolist()])


@dataclass
class GroupData:
    """One concept group's tokens: where they are, their class, and which side of the split."""

    classes: list[str]
    rows: torch.Tensor
    positions: torch.Tensor
    labels: torch.Tensor
    train: torch.Tensor  # bool per token


def group_tokens(labels: torch.Tensor, concepts: list[str], group: str, test_rows: set[int], max_tokens: int,
                 seed: int) -> GroupData | None:
    """The group's labelled tokens (positions ≥ 1), a random sample of at most `max_tokens`; None if < 2 classes."""
    if group not in GROUPS:
        raise InputError(f"unknown probe group {group!r}; valid: {', '.join(GROUPS)}")
    member = GROUPS[group]
    if group == HAZARD:
        classes = ["other", HAZARD]
        ids = {i: int(c == HAZARD) for i, c in enumerate(concepts)}
    else:
        classes = [c for c in concepts if member(c)]
        ids = {concepts.index(c): j for j, c in enumerate(classes)}
    lab = labels.clone()
    lab[:, 0] = -1
    where = torch.nonzero(torch.isin(lab, torch.tensor(sorted(ids))))
    if len(where) == 0:
        return None
    g = torch.Generator().manual_seed(seed)
    where = where[torch.randperm(len(where), generator=g)[:max_tokens]]
    y = torch.tensor([ids[int(c)] for c in lab[where[:, 0], where[:, 1]]])
    present = torch.unique(y)
    if len(present) < 2:
        return None
    train = torch.tensor([int(r) not in test_rows for r in where[:, 0]])
    return GroupData(classes, where[:, 0], where[:, 1], y, train)


def probe_sites(model: nn.Module, layers: list[int]) -> list[tuple[int, Site]]:
    """(layer, site) pairs: -1 is the embeddings (resid_pre.0), L ≥ 0 the output of block L."""
    n = n_layers(model)
    chosen = layers or [-1, *range(n)]
    bad = [layer for layer in chosen if not -1 <= layer < n]
    if bad:
        raise InputError(f"interp.probe.layers {bad} out of range for a {n}-layer model (use -1..{n - 1})")
    return [(layer, Site("resid_pre", 0) if layer == -1 else Site("resid_post", layer)) for layer in chosen]


@torch.no_grad()
def gather(model: nn.Module, ids: torch.Tensor, sites: list[Site], rows: torch.Tensor, positions: torch.Tensor,
           batch_size: int = 16) -> dict[str, torch.Tensor]:
    """{site name: (n, d)} activations at the (row, position) pairs, in that order."""
    out: dict[str, list[torch.Tensor]] = {s.name: [] for s in sites}
    order: list[torch.Tensor] = []
    for start in range(0, len(ids), batch_size):
        sel = (rows >= start) & (rows < start + batch_size)
        if not sel.any():
            continue
        acts = read_sites(model, sites, ids[start:start + batch_size])
        for name, a in acts.items():
            out[name].append(a[rows[sel] - start, positions[sel]].float())
        order.append(torch.nonzero(sel).squeeze(-1))
    inverse = torch.argsort(torch.cat(order))
    return {name: torch.cat(v)[inverse] for name, v in out.items()}


def run_probes(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor, concepts: list[str],
               cfg: ProbeConfig) -> dict[str, Any]:
    """Probe and control accuracy per (group, layer) on held-out sequences; the summary of `interp probe`."""
    g = torch.Generator().manual_seed(cfg.seed)
    n_test = max(1, round(cfg.test_frac * len(ids)))
    test_rows = set(torch.randperm(len(ids), generator=g)[:n_test].tolist())
    sites = probe_sites(model, cfg.layers)
    groups: dict[str, Any] = {}
    for group in cfg.groups:
        data = group_tokens(labels, concepts, group, test_rows, cfg.max_tokens, cfg.seed)
        if data is None or not data.train.any() or data.train.all():
            groups[group] = {"skipped": "fewer than two classes, or no tokens on one side of the split"}
            continue
        acts = gather(model, ids, [s for _, s in sites], data.rows, data.positions)
        token_ids = ids[data.rows, data.positions]
        y, tr, te = data.labels, data.train, ~data.train
        n_cls = len(data.classes)
        shuffled = y[tr][torch.randperm(int(tr.sum()), generator=g)]
        baseline = balanced_accuracy(token_baseline(token_ids[tr], y[tr], token_ids[te], n_cls), y[te], n_cls)
        per_layer = []
        for layer, site in sites:
            x = acts[site.name]
            acc = balanced_accuracy(fit_probe(x[tr], y[tr], n_cls, cfg.l2, cfg.max_iter).predict(x[te]), y[te], n_cls)
            ctrl = balanced_accuracy(fit_probe(x[tr], shuffled, n_cls, cfg.l2, cfg.max_iter).predict(x[te]), y[te],
                                     n_cls)
            per_layer.append({"layer": layer, "site": site.name, "accuracy": round(acc, 4), "control": round(ctrl, 4),
                              "selectivity": round(acc - ctrl, 4), "over_token_baseline": round(acc - baseline, 4)})
        best = max(per_layer, key=lambda r: r["selectivity"])
        groups[group] = {"classes": [c for c in data.classes if (y == data.classes.index(c)).any()],
                         "chance": round(1 / len(torch.unique(y)), 4), "n_train": int(tr.sum()),
                         "n_test": int(te.sum()), "token_baseline": round(baseline, 4), "layers": per_layer,
                         "best_layer": best["layer"], "best_accuracy": best["accuracy"],
                         "best_selectivity": best["selectivity"]}
    return {"groups": groups, "metric": "balanced accuracy (mean per-class recall) on held-out sequences",
            "control": "the probe trained on training labels shuffled among training tokens",
            "token_baseline": "each test token labelled with the commonest training label of its token id",
            "rows": len(ids),
            "test_rows": n_test, "positions": ">= 1"}
