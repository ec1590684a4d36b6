"""Precision probes side by side: the matmul benchmark's choice against the whole training step's, per rung.

For each (depth, batch) of the tiny preset's ladder (and d2 at the data-constrained experiments' batch of 2), times
the model's matrix products (`model.precision.matmul_rates`) and its training step (`train.precision_probe`) in
fp32 and bf16 autocast on this host, and prints both choices. Nothing is cached.

    python benchmarks/precision_probe.py                 # d2 batch 2, d2..d5 batch 8
    python benchmarks/precision_probe.py --runs 2,16 5,16
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from scalelab.model.llama import Llama
from scalelab.model.precision import MARGIN, faster_dtype, matmul_rates, matmul_shapes
from scalelab.presets import preset
from scalelab.train.precision_probe import STEP_MARGIN, step_measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=["2,2", "2,8", "3,8", "4,8", "5,8"], help="depth,batch pairs")
    ap.add_argument("--seq", type=int, default=256)
    args = ap.parse_args()
    base = preset("tiny").model
    print(f"threads {torch.get_num_threads()}; choose bf16 at >= {MARGIN} (matmuls), >= {STEP_MARGIN} (step)")
    for run in args.runs:
        depth, batch = (int(v) for v in run.split(","))
        cfg = dataclasses.replace(base, depth=depth)
        shapes = matmul_shapes(cfg.d_model, cfg.d_ff, cfg.vocab_size, batch * args.seq)
        mm = matmul_rates(shapes)
        step = step_measure(Llama(cfg), cfg, batch, args.seq, torch.device("cpu"))(shapes)
        mm_pick, step_pick = faster_dtype(mm, MARGIN), faster_dtype(step, STEP_MARGIN)
        print(f"d{depth} batch {batch}: matmuls bf16 {mm['bf16']:.0f} / fp32 {mm['fp32']:.0f} GFLOP/s -> {mm_pick}; "
              f"step bf16 {step['bf16']:.0f} / fp32 {step['fp32']:.0f} ({step['bf16'] / step['fp32']:.2f}x) "
              f"-> {step_pick}")


if __name__ == "__main__":
    main()
