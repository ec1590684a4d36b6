"""Benchmark: a TopK SAE (k = 32, width 16 x d_model) on SmolLM2-135M's mid-layer residual stream, trained by
scalelab, SAELens and EleutherAI sparsify on the same cached activations with the same token budget.

What runs for each peer, and why:
- scalelab: `scalelab.interp.train.train_sae` on the `ActivationCache` (TopK + AuxK, Adam).
- sae-lens: its own `SAETrainer` with a `TopKTrainingSAE`, fed our cached activations through its
  `data_provider` hook (an iterator of activation batches); logging to wandb off.
- sparsify: its `Trainer` only trains on activations it computes itself through the model, and its CLI
  hard-codes cuda:0 (NOTES.md), so it cannot read a cache. We run its `SparseCoder` with its default
  optimiser (schedule-free SignSGD, lr 5e-3/sqrt(latents/2^14)) and its training step's order of operations
  (unit-norm decoder, FVU loss, gradient parallel to decoder rows removed), in a loop here over the same
  cached batches.
All three are evaluated by the same code (`scalelab.interp.metrics`): FVU, L0, dead fraction on held-out
activations, and CE loss recovered / KL with the SAE spliced into SmolLM2. Positions >= 1 only
(SmolLM2's position 0 is an attention sink with ~100x the norm). Throughput is training activations per
second of the training loop alone (caching excluded, identical for all). fp32 throughout.

    python benchmarks/sae_peers.py --model out/smollm2 --text out/run/world --out out/bench_sae
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

os.environ.setdefault("WANDB_MODE", "disabled")

from scalelab.interp.cache import ActivationCache
from scalelab.interp.lm import load_lm, n_layers
from scalelab.interp.metrics import ce_recovered, reconstruction_metrics
from scalelab.interp.sae import SAEConfig
from scalelab.interp.sites import parse_site
from scalelab.interp.text import batched, pack_rows, read_records
from scalelab.interp.train import TrainSAEConfig, train_sae


def stream(cache: ActivationCache, batch: int, tokens: int):
    seen, epoch = 0, 0
    while True:
        for b in cache.iter_batches(batch, shuffle=True, seed=epoch):
            if seen >= tokens:
                return
            seen += len(b)
            yield b
        epoch += 1


def run_scalelab(cache, d_sae, k, tokens, batch, lr=1e-3):
    res = train_sae(cache, SAEConfig(arch="topk", d_in=cache.d_in, d_sae=d_sae, k=k, dead_tokens=tokens // 4),
                    TrainSAEConfig(tokens=tokens, batch_size=batch, lr=lr, progress=False))
    return res.sae, res.seconds


class _SaeLensView(torch.nn.Module):
    def __init__(self, sae):
        super().__init__()
        self.sae = sae

    def encode(self, x):
        return self.sae.encode(x)

    def decode(self, f):
        return self.sae.decode(f)

    def forward(self, x):
        return self.decode(self.encode(x))


def run_saelens(cache, d_sae, k, tokens, batch):
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=cache.d_in, d_sae=d_sae, k=k, device="cpu"))
    steps = tokens // batch
    # The same schedule as scalelab's: constant 1e-3, linear decay to 0 over the last 20% of steps.
    cfg = SAETrainerConfig(total_training_samples=tokens, train_batch_size_samples=batch, lr=1e-3, lr_end=0.0,
                           lr_decay_steps=max(1, steps // 5), device="cpu", n_batches_for_norm_estimate=2,
                           dead_feature_window=max(1, steps // 4))
    data = stream(cache, batch, 10**12)
    t0 = time.perf_counter()
    trainer = SAETrainer(cfg, sae, data)
    trainer.fit()
    return _SaeLensView(sae.eval()), time.perf_counter() - t0


class _SparsifyView(torch.nn.Module):
    def __init__(self, coder):
        super().__init__()
        self.coder = coder

    def encode(self, x):
        out = self.coder.encode(x)
        return torch.zeros(*x.shape[:-1], self.coder.num_latents).scatter_(-1, out.top_indices, out.top_acts)

    def decode(self, f):
        return f @ self.coder.W_dec + self.coder.b_dec

    def forward(self, x):
        return self.decode(self.encode(x))


def run_sparsify(cache, d_sae, k, tokens, batch):
    from schedulefree import ScheduleFreeWrapper
    from sparsify.config import SparseCoderConfig
    from sparsify.sign_sgd import SignSGD
    from sparsify.sparse_coder import SparseCoder

    coder = SparseCoder(cache.d_in, SparseCoderConfig(k=k, num_latents=d_sae), device="cpu", dtype=torch.float32)
    opt = ScheduleFreeWrapper(SignSGD([{"params": coder.parameters(), "lr": 5e-3 / (d_sae / 2**14) ** 0.5}]),
                              momentum=0.95)
    opt.train()
    t0 = time.perf_counter()
    for step, x in enumerate(stream(cache, batch, tokens)):
        if step == 0:
            coder.b_dec.data = x.mean(0)
        coder.set_decoder_norm_to_unit_norm()
        out = coder(x)
        out.fvu.backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
    opt.eval()  # schedule-free: evaluate at the averaged weights
    return _SparsifyView(coder.eval()), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", default="out/bench_sae")
    ap.add_argument("--site", default="resid_post.mid")
    ap.add_argument("--cache-tokens", type=int, default=81_920)
    ap.add_argument("--tokens", type=int, default=163_840, help="training activations per peer")
    ap.add_argument("--eval-tokens", type=int, default=16_384)
    ap.add_argument("--ce-rows", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--peers", default="scalelab,sae-lens,sparsify")
    ap.add_argument("--scalelab-lr", type=float, default=1e-3)
    ap.add_argument("--reuse-cache", action="store_true", help="use OUT/cache from an earlier run")
    ap.add_argument("--results", default="results.json", help="file name under OUT")
    args = ap.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)
    model, tok = load_lm(args.model)
    site = parse_site(args.site, n_layers(model))
    seq = 128
    rows = (args.cache_tokens + args.eval_tokens) // (seq - 1) + args.ce_rows + 2
    ids, _ = pack_rows(tok, read_records(args.text), seq, rows)
    ce_ids, ids = ids[:args.ce_rows], ids[args.ce_rows:]
    t0 = time.perf_counter()
    if args.reuse_cache and (out / "cache" / "cache.json").is_file():
        cache = ActivationCache(out / "cache")
    else:
        cache = ActivationCache.build(model, site, batched(ids, 16), out / "cache",
                                      args.cache_tokens + args.eval_tokens, progress=True)
    cache_s = time.perf_counter() - t0
    all_rows = cache.all_rows()
    eval_acts = all_rows[args.cache_tokens:]
    # Training reads only the first cache_tokens rows: rebuild a cache view over them.
    train_cache = ActivationCache.from_rows(all_rows[:args.cache_tokens], out / "train_cache", site.name)
    d_sae, k = 16 * cache.d_in, 32
    runners = {"scalelab": run_scalelab, "sae-lens": run_saelens, "sparsify": run_sparsify}
    results = {"model": args.model, "site": site.name, "d_in": cache.d_in, "d_sae": d_sae, "k": k,
               "train_tokens": args.tokens, "cached_tokens": args.cache_tokens, "eval_tokens": len(eval_acts),
               "cache_seconds": round(cache_s, 1), "batch": args.batch, "threads": torch.get_num_threads(),
               "load": os.getloadavg(), "positions": ">= 1", "peers": {}}
    for name in args.peers.split(","):
        try:
            extra = {"lr": args.scalelab_lr} if name == "scalelab" else {}
            sae, secs = runners[name](train_cache, d_sae, k, args.tokens, args.batch, **extra)
        except Exception as err:  # a peer that cannot run is reported, not hidden
            results["peers"][name] = {"error": f"{type(err).__name__}: {err}"}
            print(name, "failed:", err)
            continue
        with torch.no_grad():
            rec = reconstruction_metrics(sae, eval_acts)
            ce = ce_recovered(model, sae, site, batched(ce_ids, 4))
        results["peers"][name] = {"seconds": round(secs, 2), "activations_per_second": round(args.tokens / secs),
                                  **{k2: rec[k2] for k2 in ("fvu", "l0", "dead_frac")},
                                  "ce_recovered": ce["ce_recovered"], "kl": ce["kl_sae"],
                                  "ce_clean": ce["ce_clean"], "ce_sae": ce["ce_sae"], "ce_zero": ce["ce_zero"]}
        print(name, json.dumps(results["peers"][name]), flush=True)
    results["load_after"] = os.getloadavg()
    (out / args.results).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
