"""The model's shape from one dial, `depth`: width, heads and MLP size follow from it."""

from __future__ import annotations

from dataclasses import dataclass

from scalelab.config import ConfigError


@dataclass
class ModelConfig:
    """A Llama-style decoder. `depth` is the size dial: width and heads follow from it."""

    depth: int = 4
    aspect_ratio: int = 32
    """d_model = depth * aspect_ratio (nanochat uses 64 at larger scale)."""
    head_dim: int = 32
    n_kv_heads: int | None = None
    """None: multi-head attention (kv heads = heads)."""
    ffn_mult: float = 8 / 3
    """SwiGLU hidden = round_up(ffn_mult * d_model, 16)."""
    vocab_size: int = 2048
    max_seq_len: int = 256
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02
    d_model_override: int | None = None
    """Set only when importing a HF model whose shape the dial cannot express (e.g. SmolLM2)."""
    d_ff_override: int | None = None

    @property
    def d_model(self) -> int:
        return self.d_model_override or self.depth * self.aspect_ratio

    @property
    def n_heads(self) -> int:
        if self.d_model % self.head_dim:
            raise ConfigError(
                f"model.d_model={self.d_model} (depth*aspect_ratio) is not a multiple of "
                f"model.head_dim={self.head_dim}; change depth, aspect_ratio or head_dim"
            )
        return self.d_model // self.head_dim

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def d_ff(self) -> int:
        if self.d_ff_override:
            return self.d_ff_override
        return int(-(-int(self.ffn_mult * self.d_model) // 16) * 16)
