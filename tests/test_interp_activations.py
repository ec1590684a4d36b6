"""Activation sites by hooks (scalelab's Llama and transformers' agree), the memmap cache, and the metrics
(FVU, L0, dead fraction, CE loss recovered and KL checked against hand computations)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scalelab.interp.cache import ActivationCache
from scalelab.interp.metrics import ce_recovered, reconstruction_metrics
from scalelab.interp.sites import SITE_KINDS, parse_site, read_site
from scalelab.model.config import ModelConfig
from scalelab.model.llama import Llama

VOCAB = 64


@pytest.fixture(scope="module")
def model() -> Llama:
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, aspect_ratio=32, head_dim=16, vocab_size=VOCAB, max_seq_len=32, init_std=0.1)
    return Llama(cfg).eval()


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (6, 16), generator=torch.Generator().manual_seed(1))


def test_sites_match_transformers(model: Llama, ids: torch.Tensor) -> None:
    from transformers import LlamaForCausalLM

    from scalelab.model.hf import to_llama_config

    hf = LlamaForCausalLM(to_llama_config(model.cfg)).eval()
    hf.load_state_dict(model.state_dict(), strict=False)
    hf.tie_weights()
    for kind in SITE_KINDS:
        site = parse_site(f"{kind}.1", 2)
        ours, theirs = read_site(model, site, ids), read_site(hf, site, ids)
        assert ours.shape == theirs.shape
        assert torch.allclose(ours, theirs, atol=1e-4), kind
    assert read_site(model, parse_site("mlp_hidden.0", 2), ids).shape[-1] == model.cfg.d_ff
    # The residual leaving block 0 is the residual entering block 1.
    assert torch.equal(read_site(model, parse_site("resid_post.0", 2), ids),
                       read_site(model, parse_site("resid_pre.1", 2), ids))
    post = read_site(model, parse_site("resid_post.1", 2), ids)
    pre = read_site(model, parse_site("resid_pre.1", 2), ids)
    attn = read_site(model, parse_site("attn_out.1", 2), ids)
    mlp = read_site(model, parse_site("mlp_out.1", 2), ids)
    assert torch.allclose(post, pre + attn + mlp, atol=1e-5)


def test_unknown_site_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"valid sites: resid_pre\.0"):
        parse_site("resid_mid.0", 2)
    with pytest.raises(ValueError, match="unknown site"):
        parse_site("resid_post.7", 2)
    assert parse_site("resid_post.-1", 4).layer == 3 and parse_site("mlp_out.mid", 4).layer == 2


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_cache_shards_under_a_memory_budget_and_reads_back_every_row(tmp_path, model, ids, dtype) -> None:
    site = parse_site("resid_post.0", 2)
    batches = [ids[i:i + 2] for i in range(0, len(ids), 2)] * 20
    n_rows = 1500
    # memory_mb=0 forces the smallest shard (1024 rows): the cache must split into several shards.
    cache = ActivationCache.build(model, site, batches, tmp_path, n_rows, dtype=dtype, memory_mb=0, progress=False)
    assert cache.n_rows == n_rows and len(cache.meta["shards"]) == 2
    assert np.load(tmp_path / cache.meta["shards"][0], mmap_mode="r").dtype == (np.float32 if dtype == "fp32"
                                                                                 else np.uint16)
    expected = read_site(model, site, ids[:2])[:, 1:].reshape(-1, 64)
    rows = cache.all_rows()
    tol = 1e-6 if dtype == "fp32" else 2e-2
    assert torch.allclose(rows[:len(expected)], expected, atol=tol, rtol=tol)
    got = torch.cat(list(cache.iter_batches(100, shuffle=True, seed=0)))
    assert len(got) == 1500  # 15 full batches; rows carried across the shard boundary
    assert not torch.equal(got[:100], rows[:100])  # shuffled
    assert torch.allclose(got.sum(0), rows.sum(0), atol=1e-2)  # the same rows


def test_cache_refuses_nan_activations(tmp_path, model, ids) -> None:
    broken = Llama(model.cfg).eval()
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        broken.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ActivationCache.build(broken, parse_site("resid_post.0", 2), [ids], tmp_path, 32, progress=False)


def test_reconstruction_metrics_by_hand() -> None:
    class Halve(torch.nn.Module):
        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x.clamp_min(0), torch.zeros_like(x)], -1)  # second half never fires

        def decode(self, f: torch.Tensor) -> torch.Tensor:
            return f[:, :2] * 0.5

    x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [-2.0, 0.0]])
    m = reconstruction_metrics(Halve(), x)
    recon = x.clamp_min(0) * 0.5
    assert m["fvu"] == pytest.approx(float((recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()))
    assert m["l0"] == pytest.approx(3 / 3)  # positives: 1,2 | 3 | none
    assert m["dead_frac"] == pytest.approx(0.5)


def test_ce_recovered_against_a_hand_computation(model, ids) -> None:
    site = parse_site("resid_post.1", 2)  # the last block: logits = lm_head(norm(resid))
    shift = torch.randn(64, generator=torch.Generator().manual_seed(3))

    def sae(x: torch.Tensor) -> torch.Tensor:
        return x + shift

    res = ce_recovered(model, sae, site, [ids[:3], ids[3:]])
    resid = read_site(model, site, ids)

    def ce_kl(h: torch.Tensor) -> tuple[float, float]:
        logits = model.lm_head(model.model.norm(h))
        clean = F.log_softmax(model(ids), -1)
        lp = F.log_softmax(logits, -1)
        total_ce = total_kl = 0.0
        n = 0
        for b in range(ids.shape[0]):
            for t in range(1, ids.shape[1] - 1):  # positions >= 1 predict t+1
                total_ce -= float(lp[b, t, ids[b, t + 1]])
                total_kl += float((clean[b, t].exp() * (clean[b, t] - lp[b, t])).sum())
                n += 1
        return total_ce / n, total_kl / n

    with torch.no_grad():
        patched = resid.clone()
        patched[:, 1:] += shift
        ce_sae, kl_sae = ce_kl(patched)
        ce_clean, _ = ce_kl(resid)
    # Zero-ablating the final residual makes every logit 0: CE is exactly log(vocab).
    assert res["ce_zero"] == pytest.approx(math.log(VOCAB), abs=1e-5)
    assert res["ce_clean"] == pytest.approx(ce_clean, abs=1e-5)
    assert res["ce_sae"] == pytest.approx(ce_sae, abs=1e-5)
    assert res["kl_sae"] == pytest.approx(kl_sae, abs=1e-5)
    assert res["ce_recovered"] == pytest.approx((math.log(VOCAB) - ce_sae) / (math.log(VOCAB) - ce_clean), abs=1e-5)
    perfect = ce_recovered(model, lambda x: x, site, [ids])
    assert perfect["ce_recovered"] == pytest.approx(1.0) and perfect["kl_sae"] == pytest.approx(0.0, abs=1e-6)
    useless = ce_recovered(model, torch.zeros_like, site, [ids])
    assert useless["ce_recovered"] == pytest.approx(0.0, abs=1e-6)


def test_rows_for_tokens_leave_room_for_dropped_sink_rows() -> None:
    from scalelab.interp.text import rows_for_tokens

    rows = rows_for_tokens(40_000, 128)
    assert rows * 127 >= 40_000 * 1.02  # an exact count (315 rows, 40,005 activations) fell short by 7 sink rows
    assert rows_for_tokens(127, 128, spare=0.0) == 1
