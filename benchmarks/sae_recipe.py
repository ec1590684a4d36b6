"""Benchmark: which training recipe gives scalelab's TopK SAE its best reconstruction at a fixed token budget.

Trains one TopK SAE per variant (optimiser settings, batch size, decoder-bias start, AuxK weight) on the same
cached activations (an `ActivationCache` from `benchmarks/sae_peers.py`), plus sparsify's recipe
(schedule-free SignSGD) as the reference, and scores each on the same held-out rows with
`scalelab.interp.metrics.reconstruction_metrics`. FVU is reported with attention-sink rows left out (the
default; `cache.massive_rows`) and with them kept, to show how much those few rows move the figure.

    python benchmarks/sae_recipe.py --cache out/bench_sae/cache --variants base,lr4e-3_b1024 --out recipe.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from scalelab.interp.cache import ActivationCache, massive_rows
from scalelab.interp.metrics import reconstruction_metrics
from scalelab.interp.sae import SAEConfig
from scalelab.interp.train import TrainSAEConfig, train_sae

# name -> (TrainSAEConfig overrides, SAEConfig overrides). These were measured with plain Adam, before lazy
# steps became the default; they stay plain so their rows in BENCHMARKS.md reproduce.
_PLAIN_ADAM: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "base": ({"lr": 1e-3, "batch_size": 4096}, {}),
    "lr4e-3": ({"lr": 4e-3, "batch_size": 4096}, {}),
    "lr1e-3_b1024": ({"lr": 1e-3, "batch_size": 1024}, {}),
    "lr2e-3_b1024": ({"lr": 2e-3, "batch_size": 1024}, {}),
    "lr4e-3_b1024": ({"lr": 4e-3, "batch_size": 1024}, {}),
    "lr8e-3_b1024": ({"lr": 8e-3, "batch_size": 1024}, {}),
    "lr4e-3_b1024_warm": ({"lr": 4e-3, "batch_size": 1024, "warmup_frac": 0.05}, {}),
    "lr2e-3_b512": ({"lr": 2e-3, "batch_size": 512}, {}),
    "lr4e-3_b512": ({"lr": 4e-3, "batch_size": 512}, {}),
    "lr4e-3_b1024_median": ({"lr": 4e-3, "batch_size": 1024, "b_dec_init": "median"}, {}),
    "lr4e-3_b1024_aux0": ({"lr": 4e-3, "batch_size": 1024}, {"aux_coeff": 0.0}),
    "lr4e-3_b1024_aux1/8": ({"lr": 4e-3, "batch_size": 1024}, {"aux_coeff": 1 / 8}),
    "lr4e-3_b1024_beta2_0.99": ({"lr": 4e-3, "batch_size": 1024, "adam_betas": (0.9, 0.99)}, {}),
    "lr4e-3_b2048": ({"lr": 4e-3, "batch_size": 2048}, {}),
    "lr2e-3_b2048": ({"lr": 2e-3, "batch_size": 2048}, {}),
    "lr3e-3_b2048": ({"lr": 3e-3, "batch_size": 2048}, {}),
    "lr2.5e-3_b2048": ({"lr": 2.5e-3, "batch_size": 2048}, {}),
    "lr8e-3_b4096": ({"lr": 8e-3, "batch_size": 4096}, {}),
    "lr4e-3_b1024_dead10k": ({"lr": 4e-3, "batch_size": 1024}, {"dead_tokens": 10_240}),
    "lr4e-3_b1024_dead10k_aux1/8": ({"lr": 4e-3, "batch_size": 1024}, {"dead_tokens": 10_240, "aux_coeff": 1 / 8}),
    "lr2e-3_b1024_dead10k": ({"lr": 2e-3, "batch_size": 1024}, {"dead_tokens": 10_240}),
}
VARIANTS = {name: ({"lazy_adam": False, **train_kw}, sae_kw) for name, (train_kw, sae_kw) in _PLAIN_ADAM.items()}

# Name parts for variants not in the table: "lr6e-3_b4096_w0.1_dead20480_aux0.125_decay0.3_median", plus the
# flags fit (fitted encoder scale), lazy / plain (lazy Adam on / off; on by default), rs1|rs2|rs3 (resampling),
# beta2<x>.
_PARTS: dict[str, tuple[str, str, type]] = {"lr": ("t", "lr", float), "b": ("t", "batch_size", int),
                                            "w": ("t", "warmup_frac", float), "decay": ("t", "decay_frac", float),
                                            "dead": ("s", "dead_tokens", int), "aux": ("s", "aux_coeff", float)}


def parse_variant(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A table entry, or the (TrainSAEConfig, SAEConfig) overrides spelled out by the name's parts."""
    if name in VARIANTS:
        return VARIANTS[name]
    train_kw: dict[str, Any] = {}
    sae_kw: dict[str, Any] = {}
    for part in name.split("_"):
        flags = {"median": {"b_dec_init": "median"}, "fit": {"fit_encoder_scale": True}, "lazy": {"lazy_adam": True},
                 "plain": {"lazy_adam": False},
                 "rs2": {"resample_at": (0.25, 0.5)}, "rs3": {"resample_at": (0.2, 0.4, 0.6)},
                 "rs1": {"resample_at": (0.5,)}}
        if part in flags:
            train_kw.update(flags[part])
            continue
        if part.startswith("beta2"):
            train_kw["adam_betas"] = (0.9, float(part[5:]))
            continue
        key = next((k for k in sorted(_PARTS, key=len, reverse=True) if part.startswith(k)), None)
        if key is None:
            raise SystemExit(f"variant {name!r}: cannot read {part!r} (known: {', '.join(_PARTS)}, median)")
        where, field, kind = _PARTS[key]
        (train_kw if where == "t" else sae_kw)[field] = kind(float(part[len(key):]))
    return train_kw, sae_kw


def train_sparsify(x: torch.Tensor, d_sae: int, k: int, tokens: int, batch: int) -> tuple[torch.nn.Module, float]:
    """sparsify's SparseCoder and optimiser in its training step's order (as in benchmarks/sae_peers.py)."""
    from schedulefree import ScheduleFreeWrapper
    from sparsify.config import SparseCoderConfig
    from sparsify.sign_sgd import SignSGD
    from sparsify.sparse_coder import SparseCoder

    from sae_peers import _SparsifyView  # run as a script: benchmarks/ is on sys.path

    torch.manual_seed(0)
    coder = SparseCoder(x.shape[1], SparseCoderConfig(k=k, num_latents=d_sae), device="cpu", dtype=torch.float32)
    opt = ScheduleFreeWrapper(SignSGD([{"params": coder.parameters(), "lr": 5e-3 / (d_sae / 2**14) ** 0.5}]),
                              momentum=0.95)
    opt.train()
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    seen, first = 0, True
    while seen < tokens:
        perm = torch.randperm(len(x), generator=g)
        for s in range(0, len(x) - batch + 1, batch):
            if seen >= tokens:
                break
            xb = x[perm[s:s + batch]]
            if first:
                coder.b_dec.data = xb.mean(0)
                first = False
            coder.set_decoder_norm_to_unit_norm()
            coder(xb).fvu.backward()
            coder.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            opt.zero_grad()
            seen += batch
    opt.eval()
    return _SparsifyView(coder.eval()), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", required=True, help="ActivationCache directory (train rows first, eval rows last)")
    ap.add_argument("--train-rows", type=int, default=81_920)
    ap.add_argument("--eval-rows", type=int, default=16_384)
    ap.add_argument("--tokens", type=int, default=163_840)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of: {', '.join(VARIANTS)}, "
                    "sparsify, sparsify_b1024")
    ap.add_argument("--dead-tokens", type=int, default=40_960,
                    help="tokens silent before a latent counts as dead for AuxK (variants' `dead` part overrides)")
    ap.add_argument("--keep-massive", action="store_true", help="train on attention-sink rows too")
    ap.add_argument("--out", default="sae_recipe.jsonl")
    args = ap.parse_args()
    rows = ActivationCache(args.cache).all_rows()
    train, held = rows[:args.train_rows], rows[args.train_rows:args.train_rows + args.eval_rows]
    if not args.keep_massive:
        train = train[~massive_rows(train)]
    d_sae, k = 16 * rows.shape[1], 32
    for name in args.variants.split(","):
        t_load = os.getloadavg()[0]
        if name.startswith("sparsify"):
            batch = 1024 if name.endswith("b1024") else 4096
            sae, secs = train_sparsify(train, d_sae, k, args.tokens, batch)
            n = args.tokens // batch * batch
            resampled = None
        else:
            tkw, skw = parse_variant(name)
            res = train_sae(train, SAEConfig(**{"arch": "topk", "d_in": rows.shape[1], "d_sae": d_sae, "k": k,
                                                "dead_tokens": args.dead_tokens, **skw}),
                            TrainSAEConfig(tokens=args.tokens, progress=False, **tkw))
            sae, secs, n, resampled = res.sae, res.seconds, res.rows, res.resampled
        with torch.no_grad():
            clean = reconstruction_metrics(sae, held)
            kept = reconstruction_metrics(sae, held, max_norm_factor=None)
        row = {"variant": name, "fvu": round(clean["fvu"], 4), "fvu_with_sinks": round(kept["fvu"], 4),
               "l0": round(clean["l0"], 2), "dead_frac": round(clean["dead_frac"], 4),
               "act_per_s": round(n / secs), "load": [round(t_load, 2), round(os.getloadavg()[0], 2)],
               "train_rows": len(train), "resampled": resampled,
               "massive_rows_excluded": clean["massive_rows_excluded"]}
        print(json.dumps(row), flush=True)
        with Path(args.out).open("a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
