"""The SAE training recipe's parts: lazy Adam steps, the fitted encoder scale, resampling of silent latents."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scalelab.interp.sae import SAEConfig, make_sae
from scalelab.interp.train import TrainSAEConfig, lazy_step, resample_silent, train_sae


def _topk(d_in: int = 16, d_sae: int = 64, k: int = 4):
    torch.manual_seed(0)
    return make_sae(SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, k=k, dead_tokens=10**9))


def test_lazy_step_leaves_idle_latents_and_their_moments_untouched() -> None:
    sae = _topk()
    x = torch.randn(32, 16)
    sae.fit_normalisation(x)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    for step in range(3):  # build up moments for every latent that fires
        loss, _ = sae.training_step_loss(torch.randn(32, 16, generator=torch.Generator().manual_seed(step)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss, _ = sae.training_step_loss(x[:2])  # two tokens: at most 8 of 64 latents get a gradient
    opt.zero_grad()
    loss.backward()
    idle = (sae.W_enc_T.grad == 0).all(1)
    assert idle.sum() >= 56
    assert torch.equal(sae.grad_latents, ~idle)  # the step's own record of touched latents matches the gradient
    before = {n: p.detach().clone() for n, p in sae.named_parameters()}
    moments = {n: opt.state[p]["exp_avg"].clone() for n, p in sae.named_parameters()}
    lazy_step(opt, sae)
    for name in ("W_enc_T", "W_dec", "b_enc"):
        p = dict(sae.named_parameters())[name]
        assert torch.equal(p[idle], before[name][idle]), name
        assert torch.equal(opt.state[p]["exp_avg"][idle], moments[name][idle]), name
        assert not torch.equal(p[~idle], before[name][~idle]), name  # the active latents did move
    assert not torch.equal(sae.b_dec, before["b_dec"])  # shared parameters step as usual


def test_fitted_encoder_scale_minimises_the_first_reconstruction_error() -> None:
    sae = _topk()
    x = torch.randn(256, 16) * 2 + 1
    sae.fit_normalisation(x)

    def err(scale: float) -> float:
        probe = _topk()
        probe.load_state_dict(sae.state_dict())
        with torch.no_grad():
            probe.W_enc_T.mul_(scale)
            xs = x * probe.norm_scale
            return float((probe.activation(probe.pre_acts(xs)) @ probe.W_dec + probe.b_dec - xs).pow(2).sum())

    c = sae.fit_encoder_scale(x)
    assert 0 < c < 1  # the transposed-decoder start overshoots
    best = err(1.0)  # sae already holds the fitted scale
    assert best < err(1.1) and best < err(0.9)
    assert best < err(1 / c)  # better than the unscaled start


def test_resampled_latents_restart_on_badly_reconstructed_inputs_with_fresh_moments() -> None:
    sae = _topk()
    x = torch.randn(64, 16)
    sae.fit_normalisation(x)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    loss, _ = sae.training_step_loss(x)
    loss.backward()
    opt.step()
    with torch.no_grad():
        sae.steps_since_fired.zero_()
        sae.steps_since_fired[:5] = 1000  # five latents have been silent for 1,000 tokens
    n = resample_silent(opt, sae, x, silent_tokens=500)
    assert n == 5
    assert torch.all(sae.steps_since_fired[:5] == 0)
    for p in (sae.W_enc_T, sae.W_dec):
        assert torch.all(opt.state[p]["exp_avg"][:5] == 0) and torch.all(opt.state[p]["exp_avg_sq"][:5] == 0)
    # Each new decoder row points at one of the batch's inputs (centred by b_dec, in normalised units).
    inputs = F.normalize(x * sae.norm_scale - sae.b_dec, dim=-1)
    cos = (F.normalize(sae.W_dec[:5], dim=-1) @ inputs.T).max(1).values
    assert torch.all(cos > 0.999)
    assert torch.allclose(sae.W_dec[:5].norm(dim=-1), torch.ones(5), atol=1e-5)


def test_train_sae_reports_resampling() -> None:
    torch.manual_seed(0)
    x = torch.randn(4096, 2) @ torch.randn(2, 16)  # a 2-dimensional cloud: few of 256 latents ever win
    cfg = SAEConfig(arch="topk", d_in=16, d_sae=256, k=2)
    res = train_sae(x, cfg, TrainSAEConfig(tokens=8192, batch_size=256, resample_at=(0.25, 0.5), progress=False,
                                           lazy_adam=True, fit_encoder_scale=True))
    assert len(res.resampled) == 2 and res.resampled[0] > 0



def test_lazy_step_also_freezes_architecture_specific_latent_parameters() -> None:
    torch.manual_seed(0)
    sae = make_sae(SAEConfig(arch="jumprelu", d_in=16, d_sae=64, jump_init_threshold=0.3))
    x = torch.randn(2, 16)
    sae.fit_normalisation(torch.randn(64, 16))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    loss, _ = sae.training_step_loss(x)
    loss.backward()
    idle = (sae.W_enc_T.grad == 0).all(1)
    assert idle.any() and (~idle).any()
    before = sae.log_threshold.detach().clone()
    sae.log_threshold.grad = torch.ones_like(before)  # a gradient on every threshold, idle latents' included
    lazy_step(opt, sae)
    assert torch.equal(sae.log_threshold[idle], before[idle])
    assert not torch.equal(sae.log_threshold[~idle], before[~idle])
