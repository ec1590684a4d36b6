"""The sparse TopK training step (one encoder pass for TopK and AuxK, CSR backward) computes the same loss and
gradients as the dense definition (base `SAE.training_step_loss` with `topk_relu` and `auxk_loss`)."""

from __future__ import annotations

import copy

import pytest
import torch

from scalelab.interp.sae import SAEConfig, make_sae
from scalelab.interp.sae.base import SAE


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
    for name in ("W_enc", "b_enc", "b_dec", "W_dec"):
        gs, gd = getattr(sparse, name).grad, getattr(dense, name).grad
        assert torch.allclose(gs, gd, rtol=1e-4, atol=1e-5), name
    assert torch.equal(sparse.steps_since_fired, dense.steps_since_fired)
