"""The sparse TopK training step (one encoder pass for TopK and AuxK, CSR backward) computes the same loss and
gradients as the dense definition (base `SAE.training_step_loss` with `topk_relu` and `auxk_loss`)."""

from __future__ import annotations

import copy

import pytest
import torch

from scalelab.interp.sae import SAEConfig, make_sae
from scalelab.interp.sae.base import SAE
from scalelab.interp.sae.sparse_topk import _n_groups, grouped_topk, topk_decode


@pytest.mark.parametrize("n_dead", [0, 5, 40])
def test_sparse_step_matches_the_dense_definition(n_dead: int) -> None:
    torch.manual_seed(0)
    cfg = SAEConfig(arch="topk", d_in=24, d_sae=96, k=6, aux_k=8, dead_tokens=1000)
    sparse = make_sae(cfg)
    x = torch.randn(64, 24) * 3 + 1
    sparse.fit_normalisation(x)
    with torch.no_grad():
        sparse.b_enc.normal_(0, 0.3)
        # n_dead latents have been silent long enough to count as dead after this batch unless they fire.
        sparse.steps_since_fired[:n_dead] = 5000
    dense = copy.deepcopy(sparse)

    loss_s, parts_s = sparse.training_step_loss(x)
    loss_d, _ = SAE.training_step_loss(dense, x)
    assert ("auxk" in parts_s) == (n_dead > 0)
    assert torch.allclose(loss_s, loss_d, rtol=1e-5, atol=1e-6)
    loss_s.backward()
    loss_d.backward()
    # The sparse decoder gradient arrives already projected off the (unit) decoder rows; the dense one is
    # projected by the base class, as the training loop does before every optimiser step.
    sparse.remove_parallel_grad()
    SAE.remove_parallel_grad(dense)
    for name in ("W_enc_T", "b_enc", "b_dec", "W_dec"):
        gs, gd = getattr(sparse, name).grad, getattr(dense, name).grad
        assert torch.allclose(gs, gd, rtol=1e-4, atol=1e-5), name
    assert torch.equal(sparse.steps_since_fired, dense.steps_since_fired)


@pytest.mark.parametrize("d,k", [(9216, 32), (1024, 8), (600, 20), (96, 6)])
def test_grouped_topk_is_exact(d: int, k: int) -> None:
    torch.manual_seed(1)
    pre = torch.randn(50, d)
    pre[:5] = pre[:5].round()  # rows full of ties
    pre[5, : d // 2] = 7.0  # one row whose top-k all tie, packed into a few groups
    vals, idx = grouped_topk(pre, k)
    ref = pre.topk(k, dim=-1).values
    assert torch.equal(vals.sort(-1).values, ref.sort(-1).values)
    assert torch.equal(pre.gather(1, idx), vals)  # indices point at the values
    assert all(len(set(row.tolist())) == k for row in idx)  # k distinct latents per row


def test_grouped_topk_uses_groups_on_wide_rows() -> None:
    # The fast path must actually run where it matters (SmolLM2: 576 x 16 latents), not only fall back.
    assert _n_groups(9216, 32) == 512  # the divisor of 9,216 nearest sqrt(9,216 * 32) = 543
    assert _n_groups(96, 6) == 24
    assert _n_groups(97, 6) == 0  # a prime width has no grouping: plain top-k


def test_sparse_step_matches_dense_on_a_wide_sae() -> None:
    # d_sae = 1024 takes grouped_topk's grouped path and reuses the workspace over two steps.
    torch.manual_seed(0)
    cfg = SAEConfig(arch="topk", d_in=32, d_sae=1024, k=8, dead_tokens=10**9)
    sparse = make_sae(cfg)
    dense = copy.deepcopy(sparse)
    for seed in (0, 1):
        x = torch.randn(128, 32, generator=torch.Generator().manual_seed(seed)) * 2
        if seed == 0:
            sparse.fit_normalisation(x)
            dense.fit_normalisation(x)
        loss_s, _ = sparse.training_step_loss(x)
        loss_d, _ = SAE.training_step_loss(dense, x)
        assert torch.allclose(loss_s, loss_d, rtol=1e-5, atol=1e-6)
        loss_s.backward()
        loss_d.backward()
        SAE.remove_parallel_grad(dense)
        for name in ("W_enc_T", "b_enc", "b_dec", "W_dec"):
            assert torch.allclose(getattr(sparse, name).grad, getattr(dense, name).grad, rtol=1e-4, atol=1e-5), name
            getattr(sparse, name).grad = None
            getattr(dense, name).grad = None


def test_tangent_decode_gradient_is_the_projected_one() -> None:
    torch.manual_seed(3)
    w = torch.nn.functional.normalize(torch.randn(40, 12), dim=-1).requires_grad_()
    idx = torch.stack([torch.randperm(40)[:5] for _ in range(16)])
    vals = torch.rand(16, 5, requires_grad=True)
    target = torch.randn(16, 12)
    grads = []
    for tangent in (False, True):
        w.grad = vals.grad = None
        (topk_decode(vals, idx, w, tangent=tangent) - target).pow(2).sum().backward()
        grads.append((w.grad.clone(), vals.grad.clone()))
    (g_full, gv_full), (g_tan, gv_tan) = grads
    projected = g_full - (g_full * w).sum(-1, keepdim=True) * w
    assert torch.allclose(g_tan, projected, atol=1e-5)
    assert torch.allclose((g_tan * w).sum(-1), torch.zeros(40), atol=1e-5)  # no radial part left
    assert torch.allclose(gv_tan, gv_full)  # value gradients unchanged
