"""Train an SAE on cached activations: lazy Adam, constant LR with a linear decay at the end, unit-norm decoder.

The defaults are the measured recipe (BENCHMARKS.md, "Sparse autoencoders"): batch 2048, an LR that falls as
1/sqrt(latents) from 2.35e-3 at 9,216 latents, and lazy Adam steps (latents without a gradient stay put). On
SmolLM2 at a fixed budget of 163,840 activations every LR trades reconstruction for latents that never fire on
held-out text (plain Adam: FVU 0.101 / 0.7% dead at 2e-3, 0.085 / 10.6% at 3e-3); lazy steps move that frontier
(0.094 / 0.8% at 2.35e-3), and this point is the lowest FVU that keeps dead latents under 1%.

Precision (`dtype`): auto runs the forward pass under bf16 autocast where this host's bf16 products of the
SAE's shapes (encoder and decoder at the batch size) are faster by `model.precision.MARGIN`, measured once per
host and shape set (`choose_precision`); fp32 otherwise. Only the forward's dense products drop to bf16: the
TopK selection picks latents from bf16 pre-activations but their values are recomputed in fp32
(`sparse_topk`), and the loss reduction, the backward's sparse products, the decoder renormalisation and the
Adam state stay fp32 (BENCHMARKS.md, "Precision by measurement", has the parity measured).

The loop is deliberately small: the SAE's own `training_step_loss` knows its architecture's loss, and
`after_step` its bookkeeping (resampling, thresholds); the loop only streams batches from the cache
(re-reading it when the token budget exceeds one pass), keeps the decoder unit-norm, logs and times.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from scalelab.errors import InputError
from scalelab.interp.cache import ActivationCache, check_finite
from scalelab.interp.sae import SAE, SAEConfig, make_sae
from scalelab.model.precision import FP32, Precision, choose_precision, sae_shapes

LR_AT_16K_LATENTS = 2.35e-3 * (9216 / 2**14) ** 0.5  # 1.76e-3


@dataclass
class TrainSAEConfig:
    """The SAE training loop's settings (the `interp.train` section of a run's config)."""

    tokens: int = 160_000
    """activation rows seen in training (with repeats if the cache is smaller); 160k keep the tiny run's interp
    stage near 2 minutes on 2 busy cores (BENCHMARKS.md)."""
    batch_size: int = 2048
    lr: float = 0.0
    """0: ∝ 1/sqrt(latents), 2.35e-3 at 9,216 (`lr_for_width`; measured in BENCHMARKS.md)."""
    warmup_frac: float = 0.0
    """first fraction of steps over which the LR rises linearly from 0."""
    decay_frac: float = 0.2
    """final fraction of steps over which the LR falls linearly to 0."""
    b_dec_init: str = "mean"
    """"mean" | "median" (geometric median) | "zero": where the decoder bias starts."""
    fit_encoder_scale: bool = False
    """start W_enc at the scale that minimises the first reconstruction error."""
    lazy_adam: bool = True
    """latents with no gradient in a step keep their weights and Adam moments (`lazy_step`)."""
    resample_at: tuple[float, ...] = ()
    """fractions of the run at which latents silent since the previous resampling restart on badly reconstructed
    inputs (SAE.resample, at the live encoder scale) with fresh Adam moments; () = never."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    dtype: str = "fp32"
    """auto | fp32 | bf16: the forward pass's precision (auto: bf16 autocast where this host measured it faster
    on the SAE's shapes; the module docstring says what stays fp32). fp32 by default: on the tiny d5 model bf16
    missed the 1% FVU parity (+3.4% and +0.7% over two seeds, more dead latents) and the step gained nothing,
    its slower bf16 top-k eating the encoder's gain, which the matmul benchmark cannot see (BENCHMARKS.md)."""
    log_every: int = 25
    seed: int = 0
    threads: int = 0
    """torch threads (0: leave as is)."""
    progress: bool = True


@dataclass
class TrainResult:
    sae: SAE
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    rows: int = 0
    resampled: list[int] = field(default_factory=list)  # latents restarted at each resampling
    precision: Precision = FP32  # what the forward passes ran in, and why

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _batches(source: ActivationCache | torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless shuffled batches, a new shuffle each pass."""
    epoch = 0
    while True:
        if isinstance(source, torch.Tensor):
            g = torch.Generator().manual_seed(seed + epoch)
            perm = torch.randperm(len(source), generator=g)
            if len(source) < batch_size:
                raise InputError(f"only {len(source)} activation rows; need at least one batch of {batch_size}")
            for s in range(0, len(source) - batch_size + 1, batch_size):
                yield source[perm[s:s + batch_size]]
        else:
            n = 0
            for b in source.iter_batches(batch_size, shuffle=True, seed=seed + epoch):
                n += 1
                yield b
            if n == 0:
                raise InputError(f"cache {source.dir} has fewer rows ({source.n_rows}) than one batch of {batch_size}")
        epoch += 1


def lr_for_width(d_sae: int) -> float:
    """Adam LR ∝ 1/sqrt(latents) (Gao et al. 2024; sparsify uses the same rule for SignSGD), anchored where
    it was measured: 2.35e-3 at 9,216 latents (SmolLM2, batch 2048, 163,840 activations; BENCHMARKS.md)."""
    return LR_AT_16K_LATENTS * (2**14 / d_sae) ** 0.5


def lr_at(step: int, n_steps: int, lr: float, cfg: TrainSAEConfig) -> float:
    """Linear warmup, constant `lr`, linear decay to 0 (the fractions are of the run's steps)."""
    warmup = int(n_steps * cfg.warmup_frac)
    decay_start = int(n_steps * (1 - cfg.decay_frac))
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= decay_start:
        return lr * (n_steps - step) / max(1, n_steps - decay_start)
    return lr


@torch.no_grad()
def lazy_step(opt: torch.optim.Optimizer, sae: SAE) -> None:
    """An optimiser step that leaves idle latents (no gradient this step: they neither fired nor served AuxK)
    untouched, as lazy / sparse Adam does for embedding rows.

    Plain Adam keeps moving a latent after it stops firing: its momentum decays over ~1/(1-β1) = 10 steps, and
    a latent whose last update pushed its activation down keeps sinking until nothing selects it again.
    """
    touched = getattr(sae, "grad_latents", None)  # known from the step itself (TopK); else read off the gradient
    g = sae.W_enc_T.grad
    if touched is not None:
        idle = (~touched).nonzero().squeeze(1)
    else:
        idle = (g == 0).all(1).nonzero().squeeze(1) if g is not None else g
    if idle is None or len(idle) == 0:
        opt.step()
        return
    saved = []
    for p in sae.per_latent_parameters():
        state = opt.state.get(p, {})
        for t in [p, *(state[k] for k in ("exp_avg", "exp_avg_sq") if k in state)]:
            saved.append((t, t[idle].clone()))
    opt.step()
    for t, rows in saved:
        t[idle] = rows


@torch.no_grad()
def resample_silent(opt: torch.optim.Optimizer, sae: SAE, batch: torch.Tensor, silent_tokens: int) -> int:
    """Resample the latents silent for `silent_tokens` training tokens and zero their Adam moments."""
    silent = (sae.steps_since_fired >= silent_tokens).nonzero().squeeze(1)
    sae.resample(silent, batch, enc_scale=1.0)
    for p in sae.per_latent_parameters():
        for key in ("exp_avg", "exp_avg_sq"):
            if key in opt.state.get(p, {}):
                opt.state[p][key][silent] = 0.0
    return len(silent)


def train_sae(source: ActivationCache | torch.Tensor, sae_cfg: SAEConfig, cfg: TrainSAEConfig) -> TrainResult:
    """Train a fresh SAE of `sae_cfg` on a cache or an in-memory (N, d_in) tensor of activations."""
    d_in = source.d_in if isinstance(source, ActivationCache) else source.shape[-1]
    if d_in != sae_cfg.d_in:
        raise InputError(f"SAE d_in={sae_cfg.d_in} does not match the activations' width {d_in}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    # Adam's moments of rarely-firing latents decay into subnormal floats, which x86 CPUs process ~100x
    # slower: measured 10x lower SAE throughput on real activations without flushing them to zero.
    torch.set_flush_denormal(True)
    sae = make_sae(sae_cfg)
    sample = source.all_rows(max_rows=8192) if isinstance(source, ActivationCache) else source[:8192]
    check_finite(sample, "SAE training activations")
    sae.fit_normalisation(sample, cfg.b_dec_init)
    if cfg.fit_encoder_scale:
        sae.fit_encoder_scale(sample[:2048])
    lr = cfg.lr or lr_for_width(sae_cfg.d_sae)
    # The fused kernel updates each parameter in one pass: 13 ms vs 70 ms per step for a 576 x 9,216 SAE on
    # one CPU thread, where the unfused Adam was the largest cost after the encoder matmul (BENCHMARKS.md).
    opt = torch.optim.Adam(sae.parameters(), lr=lr, betas=cfg.adam_betas, fused=True)
    n_steps = max(1, cfg.tokens // cfg.batch_size)
    device = sae.W_dec.device
    precision = choose_precision(cfg.dtype, device, sae_shapes(sae_cfg.d_in, sae_cfg.d_sae, cfg.batch_size))
    result = TrainResult(sae, precision=precision)
    batches = _batches(source, cfg.batch_size, cfg.seed)
    sae.train()
    bar = tqdm(range(n_steps), desc=f"SAE {sae_cfg.arch}", unit="step", disable=not cfg.progress)
    if cfg.progress:
        bar.write(f"SAE {sae_cfg.arch} {sae_cfg.d_in}x{sae_cfg.d_sae}: precision {precision.describe()}")
    resample_steps = sorted({max(1, round(f * n_steps)) for f in cfg.resample_at})
    t0 = time.perf_counter()
    for step in bar:
        x = next(batches)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, n_steps, lr, cfg)
        with precision.context(device):
            loss, parts = sae.training_step_loss(x)
        if not torch.isfinite(loss):
            raise InputError(f"SAE loss became {float(loss)} at step {step}; lower the learning rate "
                             f"(lr={lr}) or check the activations for outliers")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_parallel_grad()
        if cfg.lazy_adam:
            lazy_step(opt, sae)
        else:
            opt.step()
        sae.normalise_decoder()
        sae.after_step(step, x)
        if step in resample_steps:
            # Silent since the previous resampling (or the start): one interval's worth of tokens.
            prev = max([s for s in resample_steps if s < step], default=0)
            result.resampled.append(resample_silent(opt, sae, x, (step - prev) * cfg.batch_size))
        if step % cfg.log_every == 0 or step == n_steps - 1:
            with torch.no_grad():
                x_s = x * sae.norm_scale
                fvu = float(parts["mse"] / (x_s - x_s.mean(0)).pow(2).sum(-1).mean())
            row: dict[str, Any] = {"step": step, "tokens": (step + 1) * cfg.batch_size, "fvu": fvu,
                                   "dead_frac": float(sae.dead_mask.float().mean()),
                                   **{k: float(v.detach()) for k, v in parts.items()}}
            result.history.append(row)
            bar.set_postfix(fvu=f"{fvu:.3f}", l0=f"{row['l0']:.1f}", dtype=precision.dtype)
    result.seconds = time.perf_counter() - t0
    torch.set_flush_denormal(False)
    result.rows = n_steps * cfg.batch_size
    sae.eval()
    return result
