"""One SAE on one model, end to end: cache a site's activations, train, evaluate, save (SAELens layout).

This is what `scalelab interp sae` and the `interp` stage of `scalelab run` call. Training activations
come from `text` (packed like pretraining); evaluation uses a disjoint slice of the same text for FVU,
L0, dead/dense and CE loss recovered, all on positions ≥ 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from scalelab.config import InterpConfig
from scalelab.interp.cache import ActivationCache
from scalelab.interp.lm import load_lm, n_layers
from scalelab.interp.metrics import ce_recovered, reconstruction_metrics
from scalelab.interp.sae import SAEConfig
from scalelab.interp.saelens import save_sae
from scalelab.interp.sites import parse_site, read_site
from scalelab.interp.text import batched, pack_rows, read_records
from scalelab.interp.train import TrainSAEConfig, train_sae


def train_sae_on_model(model_dir: Path | str, text: Path | str, out_dir: Path | str, cfg: InterpConfig,
                       progress: bool = True, device: str = "cpu") -> dict[str, Any]:
    """Train and evaluate an SAE on `model_dir` at `cfg.site`; returns (and saves) its metrics."""
    out = Path(out_dir)
    model, tokenizer = load_lm(model_dir, device)
    site = parse_site(cfg.site, n_layers(model))
    rows_needed = -(-cfg.cache_tokens // (cfg.seq_len - 1)) + cfg.eval_rows
    ids, _ = pack_rows(tokenizer, read_records(text), cfg.seq_len, rows_needed)
    if len(ids) <= cfg.eval_rows:
        raise ValueError(f"{text} gave only {len(ids)} rows of {cfg.seq_len} tokens; need more than "
                         f"eval_rows={cfg.eval_rows}")
    eval_ids, train_ids = ids[:cfg.eval_rows], ids[cfg.eval_rows:]
    n_cache = min(cfg.cache_tokens, len(train_ids) * (cfg.seq_len - 1))
    t0 = time.perf_counter()
    cache = ActivationCache.build(model, site, batched(train_ids, 16), out / "cache", n_cache, cfg.cache_dtype,
                                  cfg.memory_mb, progress=progress, meta={"model": str(model_dir)})
    cache_seconds = time.perf_counter() - t0
    sae_cfg = SAEConfig(arch=cfg.arch, d_in=cache.d_in, d_sae=cfg.width * cache.d_in, k=cfg.k,
                        l1_coeff=cfg.l1_coeff, l0_coeff=cfg.l0_coeff, dead_tokens=cfg.dead_tokens)
    res = train_sae(cache, sae_cfg, TrainSAEConfig(tokens=cfg.tokens, batch_size=cfg.batch_size, lr=cfg.lr,
                                                   seed=cfg.seed, progress=progress))
    with torch.no_grad():
        eval_acts = torch.cat([read_site(model, site, b)[:, 1:].reshape(-1, cache.d_in) for b in batched(eval_ids, 16)])
    metrics = {**reconstruction_metrics(res.sae, eval_acts.float()),
               **ce_recovered(model, res.sae, site, batched(eval_ids, 16))}
    summary = {"model": str(model_dir), "site": site.name, "arch": cfg.arch, "d_in": cache.d_in,
               "d_sae": sae_cfg.d_sae, "k": cfg.k, "train_tokens": res.rows, "cache_tokens": n_cache,
               "cache_seconds": round(cache_seconds, 2), "train_seconds": round(res.seconds, 2),
               "activations_per_second": round(res.rows_per_second), "eval": metrics,
               "eval_positions": ">= 1 of each row (BOS / position 0 excluded)", "history": res.history}
    save_sae(res.sae, out, metadata={"model_name": str(model_dir), "site": site.name, "context_size": cfg.seq_len,
                                     "prepend_bos": tokenizer.bos_token_id is not None,
                                     "model_class_name": "AutoModelForCausalLM"},
             training_metrics=summary)
    return summary
