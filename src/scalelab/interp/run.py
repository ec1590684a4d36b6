"""One SAE on one model, end to end: cache a site's activations, train, evaluate, save (SAELens layout).

This is what `scalelab interp sae` and the `interp` stage of `scalelab run` call. Training activations
come from `text` (packed like pretraining); evaluation uses a disjoint slice of the same text for FVU,
L0, dead/dense and CE loss recovered, all on positions ≥ 1.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from scalelab.errors import InputError
from scalelab.interp.cache import ActivationCache
from scalelab.interp.config import InterpConfig
from scalelab.interp.metrics import ce_recovered, reconstruction_metrics
from scalelab.interp.saelens import save_sae
from scalelab.interp.sites import n_layers, parse_site, read_site
from scalelab.interp.text import batched, pack_rows, read_records, rows_for_tokens
from scalelab.interp.train import train_sae
from scalelab.model.lm import load_lm

CACHE_BATCH = 16  # sequences per forward pass while caching


def train_sae_on_model(model_dir: Path | str, text: Path | str, out_dir: Path | str, cfg: InterpConfig,
                       progress: bool = True, device: str = "cpu") -> dict[str, Any]:
    """Train and evaluate an SAE on `model_dir` at `cfg.cache.site`; returns (and saves) its metrics."""
    out = Path(out_dir)
    lm = load_lm(model_dir, device)
    model, tokenizer = lm.model, lm.tokenizer
    acts = cfg.cache
    site = parse_site(acts.site, n_layers(model))
    rows_needed = rows_for_tokens(acts.tokens, acts.seq_len) + cfg.eval_rows
    ids, _ = pack_rows(tokenizer, read_records(text), acts.seq_len, rows_needed)
    if len(ids) <= cfg.eval_rows:
        raise InputError(f"{text} gave only {len(ids)} rows of {acts.seq_len} tokens; need more than "
                         f"interp.eval_rows={cfg.eval_rows}")
    eval_ids, train_ids = ids[:cfg.eval_rows], ids[cfg.eval_rows:]
    n_cache = min(acts.tokens, len(train_ids) * (acts.seq_len - 1))
    t0 = time.perf_counter()
    forward = lm.use_precision(acts.forward_dtype, rows=CACHE_BATCH * acts.seq_len)
    cache = ActivationCache.build(model, site, batched(train_ids, CACHE_BATCH), out / "cache", n_cache, acts.dtype,
                                  acts.memory_mb, progress=progress, meta={"model": str(model_dir)},
                                  precision=forward)
    cache_seconds = time.perf_counter() - t0
    sae_cfg = cfg.sae.sized(cache.d_in)
    res = train_sae(cache, sae_cfg, replace(cfg.train, progress=progress))
    with torch.no_grad():
        eval_acts = torch.cat([read_site(model, site, b)[:, 1:].reshape(-1, cache.d_in) for b in batched(eval_ids, 16)])
    metrics = {**reconstruction_metrics(res.sae, eval_acts.float()),
               **ce_recovered(model, res.sae, site, batched(eval_ids, 16))}
    summary = {"model": str(model_dir), "site": site.name, "arch": sae_cfg.arch, "d_in": cache.d_in,
               "d_sae": sae_cfg.d_sae, "k": sae_cfg.k, "train_tokens": res.rows, "cache_tokens": n_cache,
               "cache_seconds": round(cache_seconds, 2), "cache_forward_dtype": forward.dtype,
               "train_seconds": round(res.seconds, 2),
               "activations_per_second": round(res.rows_per_second), "dtype": res.precision.dtype,
               "precision": res.precision.to_json(), "eval": metrics,
               "eval_positions": ">= 1 of each row (BOS / position 0 excluded)", "history": res.history}
    save_sae(res.sae, out, metadata={"model_name": str(model_dir), "site": site.name, "context_size": acts.seq_len,
                                     "prepend_bos": tokenizer.bos_token_id is not None,
                                     "model_class_name": "AutoModelForCausalLM"},
             training_metrics=summary)
    return summary
