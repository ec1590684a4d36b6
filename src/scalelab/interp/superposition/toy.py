"""The toy model of Elhage et al. 2022, trained as many independent instances at once.

Each instance is x̂ = ReLU(WᵀW x + b) with W ∈ ℝ^{m×n}, trained on synthetic features that are each
zero with probability S (the sparsity) and uniform on [0, 1) otherwise, under an importance-weighted
MSE. An experiment is a sweep over (sparsity, importance) settings with several random restarts each;
on a 2-core CPU training every instance of a sweep as one batched tensor program is what makes the
three experiments fit in a minute, so this module trains a stack of K instances together and then
keeps, per setting, the restart with the lowest loss on a shared held-out batch (as the paper does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TrainSpec:
    """How one stack of instances is trained (the experiment configs fill it in)."""

    steps: int
    batch_size: int
    lr: float
    eval_batch: int
    seed: int
    quadrature: int = 0  # > 0: train on the exact expected loss with this many grid points per active feature


@dataclass
class Trained:
    """The kept restart per setting: weights, biases and held-out losses, as CPU tensors."""

    W: torch.Tensor  # [settings, m, n]
    b: torch.Tensor  # [settings, n]
    loss: torch.Tensor  # [settings], importance-weighted MSE on the held-out batch (or exact, by quadrature)
    restart: torch.Tensor  # [settings], which restart was kept
    restart_losses: torch.Tensor  # [settings, restarts]


def sample_features(density: torch.Tensor, batch: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """Sparse features for K instances: [K, batch, n], each entry nonzero with its instance's density.

    One uniform draw u gives both the mask and the value: given u < p, u / p is uniform on [0, 1), so
    x = u / p where that is below 1 and 0 elsewhere. Half the random numbers of two draws, in place:
    sampling is about a third of a step's time for n = 100.
    """
    k = density.shape[0]
    x = torch.rand(k, batch, n, generator=gen).div_(density.view(k, 1, 1))
    return x.masked_fill_(x >= 1, 0.0)


def forward(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x̂ = ReLU(WᵀW x + b) for every instance: W [K, m, n], b [K, n], x [K, batch, n]."""
    return torch.relu(torch.baddbmm(b.unsqueeze(1), torch.bmm(x, W.transpose(1, 2)), W))


def expected_loss(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, importance: torch.Tensor,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-instance loss [K]: Σ_batch w Σ_i I_i (x_i − x̂_i)², w = 1/batch for a sampled batch.

    `weight` [K, batch] is each example's probability mass when x is a quadrature (`quadrature`).
    """
    per_example = ((x - forward(W, b, x)) ** 2 * importance.unsqueeze(1)).sum(-1)
    return per_example.mean(-1) if weight is None else (per_example * weight).sum(-1)


def loss_grads(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor,
               coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of Σ coef/2 · (x̂ − x)² with respect to W and b, written out by hand.

    coef broadcasts to [K, batch, n]: 2·I/batch for a sampled batch, 2·I·weight for a quadrature. The
    model is two batched matmuls and a ReLU, so the backward pass is three more matmuls; writing it out
    skips autograd's bookkeeping and the loss itself (training never reads it), which measured 1.1-1.5x
    less CPU per step than autograd on these shapes.
    """
    h = torch.bmm(x, W.transpose(1, 2))  # [K, batch, m]
    z = torch.baddbmm(b.unsqueeze(1), h, W)  # [K, batch, n]
    dz = torch.relu(z).sub_(x).mul_(coef).masked_fill_(z <= 0, 0.0)
    # W appears twice (encoder and tied decoder): its gradient is the sum of both paths.
    grad_W = torch.baddbmm(torch.bmm(h.transpose(1, 2), dz), torch.bmm(dz, W.transpose(1, 2)).transpose(1, 2), x)
    return grad_W, dz.sum(1)


def quadrature(n: int, points: int, density: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every input pattern of n features with its probability: x [batch, n] and weight [K, batch].

    Each of the 2^n on/off patterns is crossed with a midpoint grid of `points` values per active
    feature, so Σ_batch weight · f(x) is E[f(x)] up to the grid's error. For n = 2 that is 1 + 2·points
    + points² examples: the expected loss with no sampling noise, which matters at density 0.01 where a
    sampled batch of hundreds holds only a few active features.
    """
    grid = (torch.arange(points, dtype=torch.float32) + 0.5) / points
    xs, ws = [], []
    for pattern in range(2**n):
        on = [i for i in range(n) if pattern >> i & 1]
        vals = torch.cartesian_prod(*[grid] * len(on)).reshape(-1, len(on)) if on else torch.zeros(1, 0)
        x = torch.zeros(vals.shape[0], n)
        x[:, on] = vals
        xs.append(x)
        mass = density ** len(on) * (1 - density) ** (n - len(on))  # [K]
        ws.append((mass / vals.shape[0]).unsqueeze(1).expand(-1, vals.shape[0]))
    return torch.cat(xs), torch.cat(ws, 1)


def train_stack(n: int, m: int, density: torch.Tensor, importance: torch.Tensor, restarts: int,
                spec: TrainSpec) -> Trained:
    """Train `restarts` random inits of each of S settings and keep the best restart of each.

    density [S] and importance [S, n] describe the settings. Instances are laid out setting-major
    (instance = setting * restarts + restart) so a view groups the restarts of one setting. With
    `spec.quadrature` set, every step sees the exact expected loss (`quadrature`) instead of a sampled
    batch, and the restarts are compared on it too.
    """
    settings = density.shape[0]
    gen = torch.Generator().manual_seed(spec.seed)
    dens = density.float().repeat_interleave(restarts)
    imp = importance.float().repeat_interleave(restarts, dim=0)
    k = dens.shape[0]
    W = torch.randn(k, m, n, generator=gen) * math.sqrt(2.0 / (m + n))  # Xavier-normal, per instance
    b = torch.zeros(k, n)
    opt = torch.optim.Adam([W, b], lr=spec.lr)
    # Cosine decay lets a short run settle onto its geometry instead of jittering around it at full lr.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / spec.steps)))
    if spec.quadrature:
        xq, wq = quadrature(n, spec.quadrature, dens)
        xq = xq.expand(k, -1, -1)
        coef = 2 * imp.unsqueeze(1) * wq.unsqueeze(-1)
    else:
        coef = (2 * imp / spec.batch_size).unsqueeze(1)
    for _ in range(spec.steps):
        x = xq if spec.quadrature else sample_features(dens, spec.batch_size, n, gen)
        # Each instance's loss depends on its own slice only, and Adam is elementwise: one optimizer
        # over the stack trains K independent models.
        W.grad, b.grad = loss_grads(W, b, x, coef)
        opt.step()
        sched.step()
    if spec.quadrature:
        losses = expected_loss(W, b, xq, imp, wq).view(settings, restarts)
    else:
        losses = _held_out_losses(W.view(settings, restarts, m, n), b.view(settings, restarts, n),
                                  imp.view(settings, restarts, n), density, spec)
    best = losses.argmin(dim=1)
    keep = torch.arange(settings)
    return Trained(W=W.view(settings, restarts, m, n)[keep, best].clone(),
                   b=b.view(settings, restarts, n)[keep, best].clone(), loss=losses[keep, best],
                   restart=best, restart_losses=losses)


def _held_out_losses(W: torch.Tensor, b: torch.Tensor, imp: torch.Tensor, density: torch.Tensor,
                     spec: TrainSpec) -> torch.Tensor:
    """[settings, restarts] losses on one held-out batch per setting, shared by its restarts (a fair choice).

    One restart at a time: a [K, eval_batch, n] stack would not fit in memory for n = hundreds.
    """
    n = W.shape[-1]
    x = sample_features(density.float(), spec.eval_batch, n, torch.Generator().manual_seed(spec.seed + 1))
    return torch.stack([expected_loss(W[:, r], b[:, r], x, imp[:, r]) for r in range(W.shape[1])], 1)
