"""ReLU + L1 SAE (Towards Monosemanticity, Bricken et al. 2023), SAELens's `standard` architecture.

Loss: ‖x̂ − x‖² + λ Σ_i f_i ‖W_dec,i‖. Dead latents are resampled: every `resample_every` steps, latents
that have not fired for `dead_tokens` tokens get a decoder row pointing at an input the SAE reconstructs
badly (chosen with probability ∝ its squared error, as the paper does) and an encoder column along it
scaled to 0.2× the mean alive encoder norm, with a zero bias — so they restart where the SAE is worst.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scalelab.interp.sae.base import SAE


class ReluSAE(SAE):
    arch = "relu"
    resample_every = 250

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return F.relu(pre)

    def loss_terms(self, x: torch.Tensor, pre: torch.Tensor, f: torch.Tensor,
                   recon: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"l1": self.cfg.l1_coeff * (f * self.W_dec.norm(dim=-1)).sum(-1).mean()}

    @torch.no_grad()
    def after_step(self, step: int, batch: torch.Tensor) -> None:
        if step == 0 or step % self.resample_every:
            return
        # The paper's encoder scale, 0.2x the live rows' norm, and a zero bias rather than the live mean.
        self.resample(self.dead_mask.nonzero().squeeze(-1), batch, enc_scale=0.2, enc_bias=0.0)

    def saelens_arch(self) -> str:
        return "standard"
