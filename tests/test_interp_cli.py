"""`scalelab interp sae` end to end on a HF Llama folder that is not a scalelab run (as with SmolLM2): the
issue's command line (site, arch, k, width, no --text: the preset's world is built beside the SAE) with a
small token budget through --set, writing a SAELens folder that loads back; attention-sink rows are left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.interp.cache import massive_rows
from scalelab.interp.metrics import reconstruction_metrics
from scalelab.interp.saelens import CFG, WEIGHTS, load_sae
from scalelab.model.config import ModelConfig


@pytest.fixture(scope="module")
def hf_llama(tmp_path_factory) -> Path:
    """A tiny random HF Llama folder with its own byte-level tokenizer, written the way import-gguf writes one."""
    from scalelab.data.tokenizer import train_tokenizer
    from scalelab.model.hf import save_hf
    from scalelab.model.llama import Llama

    root = tmp_path_factory.mktemp("hf_llama")
    texts = [f"The {w} of town {i} keeps {i * 7} tools and a {w} creature." for i in range(200)
             for w in ("river", "stone", "lamp")]
    train_tokenizer(texts, 320, root / "tokenizer")
    torch.manual_seed(0)
    model = Llama(ModelConfig(depth=3, aspect_ratio=16, head_dim=16, vocab_size=320, max_seq_len=64))
    return save_hf(model, root / "model", root / "tokenizer")


def test_interp_sae_cli_on_a_plain_hf_folder(hf_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "sae"
    result = CliRunner().invoke(app, [
        "interp", "sae", "--model", str(hf_llama), "--out", str(out), "--preset", "smoke",
        "--set", "interp.cache.site=resid_post.1", "--set", "interp.sae.arch=topk", "--set", "interp.sae.k=4",
        "--set", "interp.sae.expansion_factor=4",
        "--set", "interp.train.tokens=4096", "--set", "interp.cache.tokens=2048",
        "--set", "interp.train.batch_size=256",
        "--set", "interp.eval_rows=4", "--set", "interp.cache.seq_len=32"])
    assert result.exit_code == 0, result.output
    assert (out / "world" / "train.jsonl").is_file()  # no --text: the preset's world was built beside the SAE
    cfg = json.loads((out / CFG).read_text())
    assert (out / WEIGHTS).is_file() and cfg["d_in"] == 48 and cfg["d_sae"] == 4 * 48
    assert cfg["metadata"]["hook_name"] == "blocks.1.hook_resid_post"
    assert cfg["metadata"]["scalelab_site"] == "resid_post.1"
    sae, _ = load_sae(out)
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["site"] == "resid_post.1" and summary["train_tokens"] == 4096
    assert summary["eval"]["l0"] <= 4 and 0 <= summary["eval"]["fvu"] < 1.5
    cache_meta = json.loads((out / "cache" / "cache.json").read_text())
    assert cache_meta["max_norm_factor"] == 10.0 and "massive_rows_dropped" in cache_meta
    assert sae.W_dec.shape == (4 * 48, 48)


def test_interp_sae_cli_names_a_bad_site(hf_llama: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["interp", "sae", "--model", str(hf_llama),
                                      "--set", "interp.cache.site=resid_post.9",
                                      "--out", str(tmp_path / "x"), "--text", str(tmp_path)])
    assert result.exit_code == 2
    assert "resid_post.9" in result.output or "valid" in result.output


def test_attention_sink_rows_are_left_out_of_fvu() -> None:
    """One row at 150x the median norm (as SmolLM2's sinks) would otherwise dominate FVU."""
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(1000, 16, generator=g)
    acts[7] *= 150.0
    assert massive_rows(acts).nonzero().flatten().tolist() == [7]

    class MissesTheSink(torch.nn.Module):  # exact on ordinary rows, reconstructs the sink as zero
        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return x

        def decode(self, f: torch.Tensor) -> torch.Tensor:
            return torch.where((f.norm(dim=-1) > 100)[:, None], torch.zeros_like(f), f)

    clean = reconstruction_metrics(MissesTheSink(), acts)
    kept = reconstruction_metrics(MissesTheSink(), acts, max_norm_factor=None)
    assert clean["massive_rows_excluded"] == 1 and clean["n_tokens"] == 999
    assert clean["fvu"] == pytest.approx(0.0, abs=1e-6)
    assert kept["fvu"] > 0.8  # one row of 1,000 holds most of the variance
