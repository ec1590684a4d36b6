"""A linear probe (L2-regularised, class-balanced logistic regression) and the binary metrics it is judged by.

The probe is fitted full-batch with L-BFGS on standardised features: on a few hundred pooled activation
vectors that converges in well under a second and needs no learning-rate tuning. Classes are weighted
to equal total weight because hazardous text is the rare class, and an unweighted fit would buy
precision with recall. The decision threshold is 0.5 on the balanced probability; callers may move it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class LinearProbe:
    """p(hazardous | x) = σ(w · (x − μ)/σ + b); flagged when p ≥ threshold."""

    weight: torch.Tensor
    bias: float
    mean: torch.Tensor
    std: torch.Tensor
    threshold: float = 0.5

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.float() - self.mean) / self.std
        return torch.sigmoid(z @ self.weight + self.bias)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.probabilities(x) >= self.threshold

    def state(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight, "bias": torch.tensor([self.bias]), "mean": self.mean, "std": self.std,
                "threshold": torch.tensor([self.threshold])}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> LinearProbe:
        return cls(state["weight"].float(), float(state["bias"][0]), state["mean"].float(), state["std"].float(),
                   float(state["threshold"][0]))


def fit_logistic(x: torch.Tensor, y: Sequence[int] | torch.Tensor, l2: float = 1e-2,
                 max_iter: int = 200) -> LinearProbe:
    """Fit a class-balanced logistic regression on rows of `x` with 0/1 labels `y`."""
    x = x.float()
    y_t = torch.as_tensor(y, dtype=torch.float32)
    if x.ndim != 2 or len(x) != len(y_t):
        raise ValueError(f"expected features (N, d) and N labels; got {tuple(x.shape)} and {len(y_t)} labels")
    n_pos = float(y_t.sum())
    if n_pos == 0 or n_pos == len(y_t):
        raise ValueError(f"a probe needs both classes; got {int(n_pos)} positive of {len(y_t)}")
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    sample_w = torch.where(y_t > 0, 0.5 / n_pos, 0.5 / (len(y_t) - n_pos))
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = z @ w + b
        loss = (sample_w * torch.nn.functional.binary_cross_entropy_with_logits(logits, y_t, reduction="none")).sum()
        loss = loss + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(w.detach().clone(), float(b.detach()), mean, std)


def binary_metrics(predicted: Sequence[bool] | torch.Tensor, labels: Sequence[int] | torch.Tensor) -> dict[str, Any]:
    """Precision, recall, F1, false-positive rate and the confusion counts (precision is 1.0 with no flags)."""
    p = torch.as_tensor(predicted).bool()
    y = torch.as_tensor(labels).bool()
    if p.shape != y.shape:
        raise ValueError(f"{len(p)} predictions but {len(y)} labels")
    tp, fp = int((p & y).sum()), int((p & ~y).sum())
    fn, tn = int((~p & y).sum()), int((~p & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "false_positive_rate": fp / (fp + tn) if fp + tn else float("nan"),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": len(y)}
