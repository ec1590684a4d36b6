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
second of the training loop alone (caching excluded, identical for all). fp32 by default; `--dtype bf16` trains
scalelab with `TrainSAEConfig.dtype="bf16"` (its encoder product under bf16 autocast) and runs sparsify's forward
under bf16 autocast (what its own trainer does on CUDA); sae-lens stays fp32. Attention-sink rows
(norm > 10x the median, `cache.massive_rows`) are left out of training and evaluation for every peer. With
`--repeats 2` the peers train in interleaved order (A B C A B C) so load drift on a shared machine does not
favour one; quality is scored on the first repeat (training is deterministic), throughput on each.

    python benchmarks/sae_peers.py --model out/smollm2 --text out/run/world --out out/bench_sae
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import torch

os.environ.setdefault("WANDB_MODE", "disabled")

from scalelab.interp.cache import ActivationCache, massive_rows
from scalelab.interp.metrics import ce_recovered, reconstruction_metrics
from scalelab.interp.sae import SAEConfig
from scalelab.interp.sites import n_layers, parse_site
from scalelab.interp.text import batched, pack_rows, read_records
from scalelab.interp.train import TrainSAEConfig, train_sae
from scalelab.model.lm import load_lm


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def stream(cache: ActivationCache, batch: int, tokens: int):
    seen, epoch = 0, 0
    while True:
        for b in cache.iter_batches(batch, shuffle=True, seed=epoch):
            if seen >= tokens:
                return
            seen += len(b)
            yield b
        epoch += 1


def run_scalelab(cache, d_sae, k, tokens, batch, lr=None, dtype="fp32"):
    """scalelab's default TopK recipe (TrainSAEConfig / SAEConfig defaults); `batch` and `lr` override it."""
    tcfg = TrainSAEConfig(tokens=tokens, progress=False, dtype=dtype)
    tcfg.batch_size = batch or tcfg.batch_size
    tcfg.lr = lr or tcfg.lr
    res = train_sae(cache, SAEConfig(arch="topk", d_in=cache.d_in, d_sae=d_sae, k=k, dead_tokens=tokens // 4), tcfg)
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


def run_sparsify(cache, d_sae, k, tokens, batch, dtype="fp32"):
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
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
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
    ap.add_argument("--batch", type=int, default=4096, help="the peers' batch size (their defaults: 4096/4096)")
    ap.add_argument("--scalelab-batch", type=int, default=0, help="0: scalelab's default recipe")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved passes over the peers (throughput)")
    ap.add_argument("--once", default="", help="peers to run in the first pass only (a slow peer on a busy machine)")
    ap.add_argument("--skip-quality", action="store_true", help="throughput only: no FVU / CE scoring")
    ap.add_argument("--peers", default="scalelab,sae-lens,sparsify")
    ap.add_argument("--scalelab-lr", type=float, default=0.0, help="0: scalelab's default recipe")
    ap.add_argument("--reuse-cache", action="store_true", help="use OUT/cache from an earlier run")
    ap.add_argument("--results", default="results.json", help="file name under OUT")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="scalelab's and sparsify's precision")
    args = ap.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)
    lm = load_lm(args.model)
    model, tok = lm.model, lm.tokenizer
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
    # Training reads only the first cache_tokens rows, attention sinks left out: a cache view over them.
    train_rows = all_rows[:args.cache_tokens]
    sinks = massive_rows(train_rows)
    train_cache = ActivationCache.from_rows(train_rows[~sinks], out / "train_cache", site.name)
    d_sae, k = 16 * cache.d_in, 32
    results = {"model": args.model, "site": site.name, "d_in": cache.d_in, "d_sae": d_sae, "k": k,
               "train_tokens": args.tokens, "cached_tokens": args.cache_tokens, "eval_tokens": len(eval_acts),
               "cache_seconds": round(cache_s, 1), "batch": args.batch, "threads": torch.get_num_threads(),
               "load": os.getloadavg(), "uptime_before": _uptime(), "positions": ">= 1",
               "train_sink_rows_dropped": int(sinks.sum()), "order": [], "peers": {}}
    for rep in range(args.repeats):
        for name in args.peers.split(","):
            if "error" in results["peers"].get(name, {}) or (rep and name in args.once.split(",")):
                continue
            try:
                if name == "scalelab":
                    sae, secs = run_scalelab(train_cache, d_sae, k, args.tokens, args.scalelab_batch, args.scalelab_lr,
                                             args.dtype)
                elif name == "sparsify":
                    sae, secs = run_sparsify(train_cache, d_sae, k, args.tokens, args.batch, args.dtype)
                elif name == "sae-lens":
                    sae, secs = run_saelens(train_cache, d_sae, k, args.tokens, args.batch)
                else:
                    raise ValueError(f"unknown peer {name!r}; use scalelab, sae-lens or sparsify")
            except Exception as err:  # a peer that cannot run is reported, not hidden
                results["peers"][name] = {"error": f"{type(err).__name__}: {err}"}
                print(name, "failed:", err)
                continue
            results["order"].append({"peer": name, "repeat": rep, "seconds": round(secs, 2),
                                     "activations_per_second": round(args.tokens / secs),
                                     "load": os.getloadavg()[0]})
            print(json.dumps(results["order"][-1]), flush=True)
            if rep == 0 and args.skip_quality:
                results["peers"][name] = {}
            elif rep == 0:
                with torch.no_grad():
                    rec = reconstruction_metrics(sae, eval_acts)
                    ce = ce_recovered(model, sae, site, batched(ce_ids, 4))
                results["peers"][name] = {**{k2: rec[k2] for k2 in ("fvu", "l0", "dead_frac")},
                                          "ce_recovered": ce["ce_recovered"], "kl": ce["kl_sae"],
                                          "ce_clean": ce["ce_clean"], "ce_sae": ce["ce_sae"], "ce_zero": ce["ce_zero"],
                                          "eval_sink_rows_excluded": rec["massive_rows_excluded"]}
                print(name, json.dumps(results["peers"][name]), flush=True)
    for name, peer in results["peers"].items():
        runs = [r["activations_per_second"] for r in results["order"] if r["peer"] == name]
        if runs:
            peer["activations_per_second"] = runs
            peer["activations_per_second_mean"] = round(sum(runs) / len(runs))
    results["load_after"] = os.getloadavg()
    results["uptime_after"] = _uptime()
    (out / args.results).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
