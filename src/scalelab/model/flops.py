"""Parameter and FLOP counts from a ModelConfig: the N and C of every scaling-law fit.

Counts follow Kaplan et al. (2020, "Scaling Laws for Neural Language Models", Table 1). Per token,
a forward pass costs

    C_forward = 2·N_matmul + 2·n_layer·n_ctx·d_attn

where N_matmul is every weight that takes part in a matrix multiply and the second term is the
attention scores and their weighted sum (QKᵀ and A·V, each n_ctx·d_attn multiply-adds per token,
halved on average by the causal mask). Training costs three times that (backward ≈ 2× forward), so

    train_flops = 6·(N_nonemb + d_model·vocab)·D + 6·n_layer·n_ctx·d_attn·D.

Choice: unlike Kaplan we *include* the unembedding (lm_head) matmul, 2·d_model·vocab per token
forward. Kaplan drop it because it is small next to N_nonemb at their sizes; at ours (d_model 64,
vocab 2048, two layers) it is the single largest matmul, and leaving it out would understate the
compute of the smallest models by more than half. The embedding lookup is a gather, not a matmul,
and is not counted. Norm gains are in N_nonemb (a rounding error). `count_params` is exact: it
equals the sum of `numel` over the model's parameters, tied weights counted once.
"""

from __future__ import annotations

from scalelab.model.config import ModelConfig


def count_params(cfg: ModelConfig) -> tuple[int, int]:
    """(total, non_embedding) parameters; embeddings = token embedding + lm_head when untied."""
    d, hd = cfg.d_model, cfg.head_dim
    attn = d * cfg.n_heads * hd + 2 * d * cfg.kv_heads * hd + cfg.n_heads * hd * d
    mlp = 3 * d * cfg.d_ff
    per_layer = attn + mlp + 2 * d  # two RMSNorm gains
    non_embedding = cfg.depth * per_layer + d  # + final norm
    embedding = cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2)
    return non_embedding + embedding, non_embedding


def flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Training FLOPs per token (forward + backward) at context `seq_len`, per the module docstring."""
    _, non_embedding = count_params(cfg)
    matmul_params = non_embedding + cfg.d_model * cfg.vocab_size
    attention = cfg.depth * seq_len * cfg.n_heads * cfg.head_dim
    return 6 * matmul_params + 6 * attention


def train_flops(cfg: ModelConfig, tokens: int, seq_len: int) -> int:
    """Total training compute C for `tokens` tokens in sequences of `seq_len`."""
    return flops_per_token(cfg, seq_len) * int(tokens)
