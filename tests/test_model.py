"""The model: HF-identical logits both ways, exact parameter/FLOP counts, the fused loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast

from scalelab.model.config import ModelConfig
from scalelab.model.flops import count_params, flops_per_token, train_flops
from scalelab.model.hf import load_model, save_hf, to_llama_config
from scalelab.model.llama import Llama
from scalelab.model.loss import linear_cross_entropy

CONFIGS = {
    "tied_mha": ModelConfig(depth=2, head_dim=16, vocab_size=300),
    "untied_gqa": ModelConfig(depth=3, head_dim=16, vocab_size=300, n_kv_heads=2, tie_embeddings=False),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_saved_folder_gives_identical_logits_in_transformers(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    cfg = CONFIGS[name]
    model = Llama(cfg).eval()
    save_hf(model, tmp_path / "m")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    x = torch.randint(0, cfg.vocab_size, (2, 50))
    with torch.no_grad():
        torch.testing.assert_close(model(x), hf(x).logits, atol=1e-5, rtol=0)
    reloaded, reloaded_cfg = load_model(tmp_path / "m")
    assert reloaded_cfg == cfg
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), model(x), atol=0, rtol=0)


def test_load_model_reads_a_folder_written_by_transformers(tmp_path: Path) -> None:
    torch.manual_seed(1)
    cfg = ModelConfig(depth=2, head_dim=16, vocab_size=200, n_kv_heads=1, tie_embeddings=False)
    hf = LlamaForCausalLM(to_llama_config(cfg)).eval()
    hf.save_pretrained(tmp_path / "hf")
    ours, _ = load_model(tmp_path / "hf")
    x = torch.randint(0, 200, (3, 40))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, atol=1e-5, rtol=0)


def test_shape_the_dial_cannot_express_round_trips(tmp_path: Path) -> None:
    # SmolLM2-like proportions: width not a multiple of depth, odd MLP width
    hf_cfg = to_llama_config(ModelConfig(depth=3, head_dim=16, vocab_size=100))
    hf_cfg.hidden_size, hf_cfg.num_attention_heads, hf_cfg.num_key_value_heads = 80, 5, 5
    hf_cfg.intermediate_size = 200
    LlamaForCausalLM(hf_cfg).save_pretrained(tmp_path / "odd")
    _, cfg = load_model(tmp_path / "odd")
    assert (cfg.d_model, cfg.d_ff, cfg.n_heads, cfg.depth) == (80, 200, 5, 3)


def test_save_hf_copies_the_tokenizer_so_auto_tokenizer_loads_it(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<|bos|>": 0, "<|pad|>": 1, "<|end|>": 2, "a": 3, "b": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|pad|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<|bos|>", "<|pad|>", "<|end|>"])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", pad_token="<|pad|>",
                            eos_token="<|end|>").save_pretrained(tmp_path / "tok")
    out = save_hf(Llama(ModelConfig(depth=1, head_dim=16, vocab_size=5)), tmp_path / "m", tmp_path / "tok")
    assert AutoTokenizer.from_pretrained(out)("a b a")["input_ids"] == [3, 4, 3]
    config = json.loads((out / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (0, 2, 1)


def test_load_model_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_model(tmp_path / "nothing")
    save_hf(Llama(ModelConfig(depth=1, head_dim=16, vocab_size=10)), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=r"model\.safetensors|corrupt"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("cfg", [*CONFIGS.values(), ModelConfig(depth=5, vocab_size=2048)])
def test_count_params_is_exact(cfg: ModelConfig) -> None:
    model = Llama(cfg)
    total, non_embedding = count_params(cfg)
    assert total == sum(p.numel() for p in model.parameters())  # tied weights counted once
    embedding = model.model.embed_tokens.weight.numel() * (1 if cfg.tie_embeddings else 2)
    assert non_embedding == total - embedding


def test_flops_follow_the_stated_formula() -> None:
    cfg = ModelConfig(depth=4, vocab_size=2048)  # d_model 128, 4 heads of 32
    _, n = count_params(cfg)
    per_token = 6 * (n + 128 * 2048) + 6 * 4 * 256 * 128
    assert flops_per_token(cfg, 256) == per_token
    assert train_flops(cfg, 10_000, 256) == 10_000 * per_token


@pytest.mark.parametrize("rows", [7, 64 * 2 + 3])  # one chunk; several chunks and a ragged last one
def test_fused_loss_matches_cross_entropy_and_its_gradients(rows: int) -> None:
    torch.manual_seed(0)
    h = torch.randn(rows, 24, requires_grad=True)
    w = torch.randn(50, 24, requires_grad=True)
    t = torch.randint(0, 50, (rows,))
    fused = linear_cross_entropy(h, w, t, rows=64)
    (fused * 3).backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    ref = F.cross_entropy(h @ w.t(), t)
    (ref * 3).backward()
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gh, h.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gw, w.grad, atol=1e-6, rtol=1e-5)


def test_training_loss_equals_cross_entropy_of_the_logits() -> None:
    torch.manual_seed(0)
    model = Llama(CONFIGS["untied_gqa"])
    x, y = torch.randint(0, 300, (2, 2, 30))
    with torch.no_grad():
        ref = F.cross_entropy(model(x).view(-1, 300), y.view(-1))
        torch.testing.assert_close(model(x, y), ref, atol=1e-5, rtol=1e-5)
