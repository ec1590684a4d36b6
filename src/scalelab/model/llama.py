"""scalelab's Llama-style decoder: RMSNorm, RoPE, SwiGLU, MHA or GQA, tied or untied embeddings.

The module tree and parameter names are exactly those of transformers' `LlamaForCausalLM`
(`model.embed_tokens`, `model.layers.{i}.self_attn.q_proj`, ..., `lm_head`), so a state dict moves
between the two without renaming and a saved checkpoint is an ordinary HF Llama folder. It is a
separate, compact implementation because at the tiny sizes this project trains on a CPU the
unembedding and the loss dominate and per-op overhead matters: the lm_head matmul and the
cross-entropy are fused and chunked (`model/loss.py`), attention is one
`F.scaled_dot_product_attention` call, norms are `F.rms_norm`, and training skips the cache, mask
and output-object machinery a general library carries (BENCHMARKS.md has the measured
difference). The same forward serves generation through an optional `KVCache` with per-row
positions, so left-padded batches of prompts work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.errors import InputError
from scalelab.model.config import ModelConfig
from scalelab.model.loss import linear_cross_entropy
from scalelab.model.precision import active_autocast_dtype


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain (no bias, no mean subtraction)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def swap_halves(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] -> [x2, x1] on the last axis.

    RoPE in HF's convention pairs dimension i with i + head_dim/2 (not interleaved pairs), and
    checkpoints are only interchangeable if we rotate the same way: HF computes
    x·cos + [-x2, x1]·sin; we fold the sign into sin once per forward ([-sin, sin]) and use
    x·cos + [x2, x1]·sin_signed, which saves a negation per layer in forward and backward.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x2, x1), dim=-1)


def rope_inv_freq(cfg: ModelConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """RoPE's per-pair angular frequencies theta^(-2i/head_dim), as HF's default rope computes them."""
    return 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float, device=device)
                                     / cfg.head_dim))


class KVCache:
    """Keys and values of every layer for a batch being decoded, preallocated to `max_len`."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device: torch.device,
                 dtype: torch.dtype) -> None:
        shape = (batch, cfg.kv_heads, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.depth)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.depth)]
        self.length = 0  # positions filled so far (same for every row: prompts are left-padded)
        self.max_len = max_len

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; cannot append up to {end}")
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_heads, self.kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        if self.n_heads % self.kv_heads:
            raise InputError(
                f"model.n_kv_heads={self.kv_heads} must divide the number of heads {self.n_heads}"
            )
        d = cfg.d_model
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None, cache: KVCache | None) -> torch.Tensor:
        b, t, _ = x.shape
        # Separate projections measured 1-3% faster than one fused qkv matmul here: the fused
        # output's split costs an activation-sized concatenation in backward (BENCHMARKS.md).
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + swap_halves(q) * sin
        k = k * cos + swap_halves(k) * sin
        if cache is not None:
            k, v = cache.append(self.layer, k, v)
        gqa = self.kv_heads != self.n_heads
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None, cache: KVCache | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """Named like HF's `LlamaModel` so parameters are `model.*` in the state dict."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.depth))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)


class Llama(nn.Module):
    """A decoder-only LM whose state dict is a HF `LlamaForCausalLM` state dict."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.register_buffer("inv_freq", rope_inv_freq(cfg), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """N(0, init_std) weights; residual-output projections scaled by 1/sqrt(2·depth) (GPT-2)."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                p.normal_(0.0, std / math.sqrt(2 * self.cfg.depth))
            else:
                p.normal_(0.0, std)

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, signed sin) for `positions` (T,) or (B, T), broadcastable over (B, heads, T, head_dim)."""
        freqs = positions.float()[..., None] * self.inv_freq
        cos, sin = freqs.cos(), freqs.sin()
        cos, sin = torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)
        if cos.dim() == 3:  # per-row positions: add the heads axis
            cos, sin = cos[:, None], sin[:, None]
        return cos.to(dtype), sin.to(dtype)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                positions: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache: KVCache | None = None, fp32_logits: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab), or the mean cross-entropy in nats when `targets` is given.

        `positions` (B, T) and a boolean `mask` (B, 1, T, T_keys; True = may attend) are for
        generation with left padding; without them the sequence is causal from position 0.
        `fp32_logits`: under autocast, the unembedding still runs in fp32, for sampling and scoring (bf16 logits
        of magnitude ~10 are rounded to steps of ~0.06 nats, enough to flip a near-tie in a greedy decode).
        """
        x = self.model.embed_tokens(idx)
        if positions is None:
            start = cache.length if cache is not None else 0
            positions = torch.arange(start, start + idx.shape[1], device=idx.device)
        dev = idx.device.type
        # Under autocast the projections come out in the autocast dtype; match it so q*cos stays there.
        dtype = active_autocast_dtype(dev) or x.dtype
        cos, sin = self.rope(positions, dtype)
        if cache is not None and mask is None:
            # SDPA's is_causal aligns to the top-left corner, wrong once keys include cached positions.
            t, past = idx.shape[1], cache.length
            keys = torch.arange(past + t, device=idx.device)
            mask = (keys[None, :] <= past + torch.arange(t, device=idx.device)[:, None])[None, None]
        for block in self.model.layers:
            x = block(x, cos, sin, mask, cache)
        if cache is not None:
            cache.length += idx.shape[1]
        x = self.model.norm(x)
        if targets is None:
            if fp32_logits and active_autocast_dtype(dev) is not None:
                with torch.autocast(dev, enabled=False):
                    return self.lm_head(x.float())
            return self.lm_head(x)
        return linear_cross_entropy(x.reshape(-1, x.shape[-1]), self.lm_head.weight, targets.reshape(-1))
