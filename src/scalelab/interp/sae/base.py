"""What every SAE architecture shares: parameters, input normalisation, unit-norm decoder, dead latents.

An SAE maps an activation x (d_in) to features f = σ(W_encᵀ(x̃ − b_dec) + b_enc) (d_sae) and back to
x̂ = W_decᵀ f + b_dec, where x̃ is x scaled so that E‖x̃‖² = d_in (Anthropic's April 2024 update; SAELens
calls it `expected_average_only_in`), which makes hyperparameters carry across sites and models. Only
σ and the training loss differ between architectures; each lives in its own module and overrides
`activation` and `loss_terms`. The decoder rows are kept at unit norm (the gradient component along
each row is removed before a step and rows are renormalised after it), so a feature's activation is
its magnitude and an L1 penalty cannot be dodged by shrinking the encoder. `steps_since_fired` counts,
per latent, the training tokens since it last fired: the dead-latent tracker AuxK and resampling use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.errors import InputError


@dataclass
class SAEConfig:
    """An SAE's architecture and shape (its training loop's settings are `interp.train.TrainSAEConfig`).

    The same object is the `interp.sae` section of a run's config, where d_in is 0 until the model is known:
    `sized(d_in)` fills it in, and d_sae from `expansion_factor` unless d_sae is set.
    """

    arch: str = "topk"
    """relu | topk | batchtopk | jumprelu (`interp.sae.ARCHITECTURES`)."""
    d_in: int = 0
    """width of the activations read (0: the site's width, filled in by `sized`)."""
    d_sae: int = 0
    """latents (0: expansion_factor × d_in)."""
    expansion_factor: int = 16
    k: int = 32
    """TopK / BatchTopK: active latents per token."""
    l1_coeff: float = 5.0
    """ReLU+L1: sparsity penalty on f·‖W_dec‖."""
    l0_coeff: float = 1e-3
    """JumpReLU: penalty on the (straight-through) L0."""
    jump_bandwidth: float = 0.05
    """JumpReLU: width of the straight-through kernel, in normalised units."""
    jump_init_threshold: float = 0.1
    aux_k: int = 0
    """AuxK: dead latents used to model the residual (0: d_in // 2, as Gao et al.)."""
    aux_coeff: float = 1 / 32
    dead_tokens: int = 100_000
    """a latent silent this many training tokens counts as dead."""

    def sized(self, d_in: int) -> SAEConfig:
        """This config for activations of width `d_in` (d_sae from the expansion factor unless set)."""
        return replace(self, d_in=d_in, d_sae=self.d_sae or self.expansion_factor * d_in)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def geometric_median(x: torch.Tensor, iters: int = 50, eps: float = 1e-6) -> torch.Tensor:
    """The point minimising the summed Euclidean distance to the rows of x (Weiszfeld's iteration).

    Towards Monosemanticity starts b_dec here: unlike the mean it is not dragged by a few outlying rows.
    """
    m = x.mean(0)
    for _ in range(iters):
        w = 1.0 / (x - m).norm(dim=-1).clamp_min(eps)
        new = (w[:, None] * x).sum(0) / w.sum()
        if (new - m).norm() <= eps * m.norm().clamp_min(1.0):
            return new
        m = new
    return m


class SAE(nn.Module):
    """Base class; subclasses set `arch` and implement `activation` (and `loss_terms` if not plain MSE)."""

    arch = ""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        if cfg.d_in <= 0 or cfg.d_sae <= 0:
            raise InputError(f"SAE sizes must be positive, got d_in={cfg.d_in}, d_sae={cfg.d_sae}")
        self.cfg = cfg
        w_dec = torch.randn(cfg.d_sae, cfg.d_in)
        w_dec = w_dec / w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        # Encoder starts as the decoder's transpose (Gao et al. 2024): fewer dead latents early on. It is stored
        # one latent per row, (d_sae, d_in) contiguous, and read as `W_enc` (d_in, d_sae), SAELens's convention:
        # the sparse TopK backward yields its gradient in row layout, and a fused optimiser copies a
        # non-contiguous parameter on every step (13 ms for 576 x 9,216 on one CPU thread).
        self.W_enc_T = nn.Parameter(w_dec.clone())
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.register_buffer("norm_scale", torch.ones(()))
        self.register_buffer("steps_since_fired", torch.zeros(cfg.d_sae, dtype=torch.long))

    @property
    def W_enc(self) -> torch.Tensor:
        """The encoder, (d_in, d_sae): a transposed view of the stored `W_enc_T` (writes go through)."""
        return self.W_enc_T.t()

    # -- the map -------------------------------------------------------------------------------------
    def pre_acts(self, x_scaled: torch.Tensor) -> torch.Tensor:
        return (x_scaled - self.b_dec) @ self.W_enc + self.b_enc

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations for raw (unnormalised) activations x (..., d_in)."""
        return self.activation(self.pre_acts(x * self.norm_scale))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Raw-space reconstruction from feature activations."""
        return (f @ self.W_dec + self.b_dec) / self.norm_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # -- training ------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_normalisation(self, sample: torch.Tensor, b_dec_init: str = "mean") -> None:
        """Set the input scale from a sample and start b_dec at its (scaled) mean, geometric median, or 0."""
        sq = sample.float().pow(2).sum(-1).mean()
        if not torch.isfinite(sq) or sq <= 0:
            raise ValueError("activation sample has zero or non-finite norm; cannot normalise SAE inputs")
        self.norm_scale.fill_(float((self.cfg.d_in / sq).sqrt()))
        starts = {"mean": lambda x: x.mean(0), "median": geometric_median, "zero": lambda x: x.new_zeros(x.shape[1])}
        if b_dec_init not in starts:
            raise InputError(f"b_dec_init={b_dec_init!r} is not one of {', '.join(starts)}")
        self.b_dec.copy_(starts[b_dec_init](sample.float()) * self.norm_scale)

    @torch.no_grad()
    def fit_encoder_scale(self, sample: torch.Tensor) -> float:
        """Scale W_enc so the untrained SAE reconstructs `sample` with the least squared error; returns the factor.

        With W_enc = W_decᵀ, a token's k selected latents each carry its full projection, and their sum
        overshoots (c* ≈ 0.67 on SmolLM2's layer 15, taking the first FVU from 0.74 to 0.66), so the first
        steps mostly shrink whatever fired.
        For activations that commute with a positive scale (ReLU, TopK, BatchTopK while b_enc = 0) the
        reconstruction is linear in the factor c, and c* = ⟨r, x − b_dec⟩ / ‖r‖² is exact.
        """
        x = sample.float() * self.norm_scale
        r = self.activation(self.pre_acts(x)) @ self.W_dec
        denom = r.pow(2).sum()
        c = float((r * (x - self.b_dec)).sum() / denom) if denom > 0 else 1.0
        if c > 0:
            self.W_enc_T.mul_(c)
        return c

    def loss_terms(self, x: torch.Tensor, pre: torch.Tensor, f: torch.Tensor,
                   recon: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra loss terms beyond MSE (sparsity penalties, AuxK); x, recon are in normalised units."""
        return {}

    def training_step_loss(self, x_raw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts for a batch of raw activations (B, d_in); updates dead tracking."""
        x = x_raw * self.norm_scale
        pre = self.pre_acts(x)
        f = self.activation(pre)
        recon = f @ self.W_dec + self.b_dec
        mse = (recon - x).pow(2).sum(-1).mean()
        with torch.no_grad():
            fired = (f > 0).any(0)
            self.steps_since_fired += x.shape[0]
            self.steps_since_fired[fired] = 0
        parts = {"mse": mse, **self.loss_terms(x, pre, f, recon)}
        total = sum(parts.values())
        parts["l0"] = (f > 0).float().sum(-1).mean().detach()
        return total, parts  # type: ignore[return-value]

    @property
    def dead_mask(self) -> torch.Tensor:
        return self.steps_since_fired >= self.cfg.dead_tokens

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the part of W_dec's gradient that would change row norms (they are renormalised anyway)."""
        grad, w = self.W_dec.grad, self.W_dec
        if grad is None:
            return
        # Row dot products by vecdot, then one in-place update (the old `g -= (g * w).sum(-1) * w` made two
        # (d_sae, d_in) temporaries).
        grad.addcmul_(torch.linalg.vecdot(grad, w).unsqueeze(-1), w, value=-1.0)

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    def per_latent_parameters(self) -> list[nn.Parameter]:
        """Parameters whose first axis is the latent: what lazy steps freeze and resampling restarts."""
        return [self.W_enc_T, self.W_dec, self.b_enc]

    @torch.no_grad()
    def resample(self, latents: torch.Tensor, batch: torch.Tensor, enc_scale: float,
                 enc_bias: float | None = None) -> None:
        """Restart `latents` where the SAE is worst (Towards Monosemanticity's resampling).

        Each gets a decoder row along an input of `batch` drawn with probability ∝ its squared reconstruction
        error, an encoder row along the same direction at `enc_scale` × the mean live encoder-row norm, and
        `enc_bias` (None: the mean live encoder bias), so it fires first on the inputs the SAE reconstructs worst.
        """
        if len(latents) == 0:
            return
        x = batch * self.norm_scale
        err = (self.activation(self.pre_acts(x)) @ self.W_dec + self.b_dec - x).pow(2).sum(-1)
        if err.sum() <= 0:
            return
        pick = torch.multinomial(err, len(latents), replacement=len(latents) > len(err))
        directions = F.normalize(x[pick] - self.b_dec, dim=-1)
        live = torch.ones(self.cfg.d_sae, dtype=torch.bool, device=x.device)
        live[latents] = False
        enc_norm = self.W_enc_T[live].norm(dim=1).mean() if live.any() else torch.tensor(1.0)
        self.W_dec[latents] = directions
        self.W_enc_T[latents] = directions * enc_scale * enc_norm
        if enc_bias is None:
            enc_bias = float(self.b_enc[live].mean()) if live.any() else 0.0
        self.b_enc[latents] = enc_bias
        self.steps_since_fired[latents] = 0

    def after_step(self, step: int, batch: torch.Tensor) -> None:
        """Hook for architecture-specific bookkeeping after an optimiser step (resampling, thresholds)."""

    # -- export --------------------------------------------------------------------------------------
    def inference_state(self) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
        """(SAELens architecture name, weights with the input scale folded in, extra cfg fields).

        Folding: encoding x̃ = s·x gives W_enc' = s·W_enc, b_dec' = b_dec/s, W_dec' = W_dec/s, so the
        saved SAE reads raw activations and needs no normalisation step (`normalize_activations: none`).
        """
        s = float(self.norm_scale)
        state = {"W_enc": self.W_enc * s, "b_enc": self.b_enc, "W_dec": self.W_dec / s, "b_dec": self.b_dec / s}
        return self.saelens_arch(), {k: v.detach().float().contiguous() for k, v in state.items()}, {}

    def saelens_arch(self) -> str:
        return self.arch
