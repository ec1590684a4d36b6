"""Training throughput: scalelab's training step vs a plain transformers `LlamaForCausalLM` loop.

Both sides train the same architecture (same ModelConfig, batch, sequence length, AdamW settings,
gradient clipping) on the same random token batches. scalelab's side is the exact step `pretrain`
runs (`scalelab.train.step`); the HF side is the loop anyone would write: `model(input_ids).logits`,
`F.cross_entropy`, backward, clip, `AdamW.step`. Variants are timed interleaved (A B A B ...) in
blocks of `--steps` steps so that load from other processes on the machine hits all of them alike;
the median block is reported. The machine's fp32 and bf16 matmul peaks are measured in the same run
(largest of square matmuls of 1024 and 2048), before and after.

MFU = model FLOPs per token × tokens/s ÷ the peak of the dtype the variant computes in (fp32 or bf16; both
are measured), with FLOPs counted as in
`scalelab.model.flops.flops_per_token`: 6·(N_nonemb + d_model·vocab) + 6·n_layer·seq·d_attn per
token (Kaplan et al. 2020 plus the unembedding matmul).

    python benchmarks/train_throughput.py                       # depths 2..5, ~3 minutes
    python benchmarks/train_throughput.py --depths 2 --compile  # + torch.compile, fp32 and bf16 (slow to build
                                                                # the first time on a host; then cached)
    python benchmarks/train_throughput.py --loss-check          # fp32 vs bf16 loss on learnable data
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

from scalelab.model.compiled import compile_module
from scalelab.model.config import ModelConfig
from scalelab.model.flops import count_params, flops_per_token
from scalelab.model.hf import to_llama_config
from scalelab.model.llama import Llama
from scalelab.train.config import TrainConfig
from scalelab.train.optim import build_optimizer
from scalelab.train.step import apply_update, forward_backward

CPU = torch.device("cpu")


def matmul_peak(dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best GFLOP/s of square matmuls (n = 1024, 2048) in `dtype`, each timed for ~`seconds`."""
    best = 0.0
    for n in (1024, 2048):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        for _ in range(2):
            a @ b
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            reps += 1
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start) / 1e9)
    return best


def scalelab_step(cfg: ModelConfig, tcfg: TrainConfig, amp: torch.dtype | None,
                  compile_model: bool = False) -> Callable[[torch.Tensor, torch.Tensor], float]:
    model = Llama(cfg)
    optimizer = build_optimizer(model, tcfg, tcfg.lr)
    forward = compile_module(model) if compile_model else model
    params = list(model.parameters())

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        loss, _ = forward_backward(forward, params, x, y, CPU, amp, tcfg.grad_clip)
        apply_update(optimizer)
        return loss.item()

    return step


def hf_step(cfg: ModelConfig, tcfg: TrainConfig,
            amp: torch.dtype | None = None) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """The plain transformers loop: all parameters in AdamW with weight decay, default settings; with `amp`,
    the forward under CPU autocast as a user of transformers would write it."""
    model = LlamaForCausalLM(to_llama_config(cfg)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2),
                                  weight_decay=tcfg.weight_decay)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def bench_depth(depth: int, args: argparse.Namespace, peaks: dict[str, float]) -> dict:
    cfg = ModelConfig(depth=depth, vocab_size=args.vocab, max_seq_len=args.seq)
    tcfg = TrainConfig(seq_len=args.seq, batch_size=args.batch)
    gen = torch.Generator().manual_seed(depth)
    x, y = torch.randint(0, args.vocab, (2, args.batch, args.seq), generator=gen)
    variants: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
        "hf_fp32": hf_step(cfg, tcfg),
        "scalelab_fp32": scalelab_step(cfg, tcfg, None),
    }
    if not args.no_bf16:
        variants["hf_bf16"] = hf_step(cfg, tcfg, torch.bfloat16)
        variants["scalelab_bf16"] = scalelab_step(cfg, tcfg, torch.bfloat16)
    compile_seconds: dict[str, float] = {}
    if args.compile:
        for amp in [None] + ([] if args.no_bf16 else [torch.bfloat16]):
            name = f"scalelab_{'bf16' if amp else 'fp32'}_compiled"
            variants[name] = scalelab_step(cfg, tcfg, amp, compile_model=True)
            start = time.perf_counter()
            variants[name](x, y)
            compile_seconds[name] = time.perf_counter() - start
    for step in variants.values():  # warm-up (allocator, oneDNN kernels)
        for _ in range(2):
            step(x, y)
    blocks: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            blocks[name].append(args.steps * args.batch * args.seq / (time.perf_counter() - start))
    fpt = flops_per_token(cfg, args.seq)
    total, non_emb = count_params(cfg)
    row = {"depth": depth, "d_model": cfg.d_model, "params": total, "non_embedding_params": non_emb,
           "flops_per_token": fpt, "compile_seconds": compile_seconds, "variants": {}}
    for name, values in blocks.items():
        tps = statistics.median(values)
        dtype = "bf16" if "bf16" in name else "fp32"
        row["variants"][name] = {"tokens_per_second": tps, "blocks": values, "dtype": dtype,
                                 "gflops": tps * fpt / 1e9, "mfu": tps * fpt / 1e9 / peaks[f"{dtype}_before"]}
    return row


def loss_check(steps: int, depth: int = 2) -> dict[str, float]:
    """Final training loss, fp32 vs bf16 autocast, same init and data (a learnable synthetic task).

    Sequences are arithmetic progressions mod the vocabulary with a random start and stride, so
    the loss can fall far below log(vocab); the last 20 steps' mean is reported.
    """
    cfg = ModelConfig(depth=depth, vocab_size=2048, max_seq_len=256)
    tcfg = TrainConfig(seq_len=256, batch_size=16)
    out = {}
    for label, amp in (("fp32", None), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        step = scalelab_step(cfg, tcfg, amp)
        gen = torch.Generator().manual_seed(1)
        losses = []
        for _ in range(steps):
            start = torch.randint(0, 2048, (16, 1), generator=gen)
            stride = torch.randint(1, 8, (16, 1), generator=gen)
            seq = (start + stride * torch.arange(257)) % 2048
            losses.append(step(seq[:, :-1], seq[:, 1:]))
        out[label] = statistics.mean(losses[-20:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4, 5])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=4, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (ABAB...)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (30+ s per depth)")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--loss-check", type=int, default=0, metavar="STEPS",
                        help="also train depth 2 for STEPS steps in fp32 and bf16 and compare the loss")
    parser.add_argument("--json", type=Path, default=None, help="write all numbers here")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default). One thread is steadier on a busy machine.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peaks = {"fp32_before": matmul_peak(torch.float32), "bf16_before": matmul_peak(torch.bfloat16)}
    print(f"threads={torch.get_num_threads()}  fp32 peak {peaks['fp32_before']:.0f} GFLOP/s  "
          f"bf16 peak {peaks['bf16_before']:.0f} GFLOP/s", flush=True)
    rows = []
    for depth in args.depths:
        rows.append(bench_depth(depth, args, peaks))
        r = rows[-1]
        for name, v in r["variants"].items():
            hf = r["variants"][f"hf_{v['dtype']}"]["tokens_per_second"]
            print(f"depth {depth} d_model {r['d_model']:4d} {name:24s} {v['tokens_per_second']:9.0f} tok/s "
                  f"{v['gflops']:6.1f} GFLOP/s  MFU({v['dtype']}) {v['mfu']:5.1%}  x{v['tokens_per_second'] / hf:.2f} "
                  f"of hf_{v['dtype']}"
                  + (f"  compile {r['compile_seconds'][name]:.1f}s" if name in r["compile_seconds"] else ""),
                  flush=True)
    peaks["fp32_after"], peaks["bf16_after"] = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(f"after: fp32 peak {peaks['fp32_after']:.0f} GFLOP/s  bf16 peak {peaks['bf16_after']:.0f} GFLOP/s")
    result = {"threads": torch.get_num_threads(), "peaks_gflops": peaks, "batch": args.batch,
              "seq": args.seq, "vocab": args.vocab, "rows": rows}
    if args.loss_check:
        result["loss_check"] = loss_check(args.loss_check)
        print(f"loss after {args.loss_check} steps (mean of last 20): {result['loss_check']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
