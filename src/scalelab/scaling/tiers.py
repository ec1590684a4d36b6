"""A model family from the sweep: three tiers on the compute-optimal frontier, their speed, and distillation.

The frontier is the lowest-loss run at each compute budget of the sweep (fitted and hold-out): the
model a lab would train at that budget. The tiers are its cheapest point (small/fast), its middle one
(balanced) and its most expensive one (large/most capable); their names are configurable.

For each tier: quality (validation loss, eval scores), cost (inference FLOPs per token, a third of the
training FLOPs per token of `model.flops`: forward only) and speed measured here with `model.generate`:
latency per token of one greedy stream (batch 1, KV cache) and throughput of a batch of streams.

Distillation then shifts the curve: the small tier's size and training tokens (same seed, so the same
data in the same order) trained against the large tier's logits (`train.step.Distillation`), compared
with the small tier trained from scratch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from scalelab.config import ConfigError
from scalelab.model.flops import flops_per_token


def frontier(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lowest-loss run of each compute budget, cheapest budget first (diverged runs ignored)."""
    best: dict[float, dict[str, Any]] = {}
    for r in records:
        loss = r["final_val_loss"]
        if loss != loss or loss == float("inf"):  # NaN/inf: a diverged run is on no frontier
            continue
        if r["budget"] not in best or loss < best[r["budget"]]["final_val_loss"]:
            best[r["budget"]] = r
    return [best[b] for b in sorted(best)]


def pick_tiers(records: Sequence[dict[str, Any]], names: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """(name, run) for three sizes, smallest first: the compute-optimal frontier's cheapest, middle and largest.

    A family trades quality for speed and cost, so its tiers must differ in size. One size is often optimal at
    several budgets (it is one tier, at its best-trained point); when the frontier has fewer than three sizes,
    the missing tiers are the best runs of the sizes next to it (smaller first: a small/fast tier is what a
    family most needs), so the family is still three models that differ in cost.
    """
    if len(names) != 3 or len(set(names)) != 3:
        raise ConfigError(f"scaling.tier_names={list(names)} must be three distinct names "
                          "(small/fast, balanced, large/most capable)")
    front = frontier(records)
    if not front:
        raise ConfigError("the sweep has no finished run to pick tiers from")
    best: dict[int, dict[str, Any]] = {}  # the lowest-loss run of every size
    for r in records:
        if r["final_val_loss"] == r["final_val_loss"] and r["final_val_loss"] != float("inf") and (
                r["params"] not in best or r["final_val_loss"] < best[r["params"]]["final_val_loss"]):
            best[r["params"]] = r
    chosen = {r["params"]: best[r["params"]] for r in front}
    others = sorted(set(best) - set(chosen))
    while len(chosen) < 3 and others:
        lo = max((p for p in others if p < min(chosen)), default=None)
        pick = lo if lo is not None else min(others)
        chosen[pick] = best[pick]
        others.remove(pick)
    if len(chosen) < 3:
        raise ConfigError(f"the sweep has {len(chosen)} model size(s); three tiers need at least 3")
    sizes = sorted(chosen)
    return list(zip(names, (chosen[sizes[0]], chosen[sizes[len(sizes) // 2]], chosen[sizes[-1]]), strict=True))


@torch.no_grad()
def measure_speed(model_dir: Path, new_tokens: int, batch: int = 8, prompt_len: int = 16,
                  repeats: int = 3) -> dict[str, float]:
    """Greedy generation speed of a HF folder on this machine: ms per token (batch 1), tokens/s (batch)."""
    from scalelab.model.generate import generate
    from scalelab.model.hf import load_model

    if new_tokens < 1:
        raise ConfigError(f"scaling.latency_new_tokens={new_tokens} must be >= 1")
    model, cfg = load_model(model_dir)
    prompt = [[(7 * i + row) % cfg.vocab_size for i in range(prompt_len)] for row in range(batch)]
    generate(model, prompt[:1], 2, temperature=0)  # warm-up: first-call allocations are not the model's speed

    def best_of(rows: list[list[int]]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            generate(model, rows, new_tokens, temperature=0)
            times.append(time.perf_counter() - t0)
        return min(times)  # the least-disturbed repeat: the machine is shared

    single, batched = best_of(prompt[:1]), best_of(prompt)
    return {"latency_ms_per_token": 1000.0 * single / new_tokens,
            "throughput_tokens_per_s": batch * new_tokens / batched, "batch": batch,
            "new_tokens": new_tokens, "threads": torch.get_num_threads()}


def tier_row(name: str, run: dict[str, Any], model_cfg: Any, seq_len: int, speed: dict[str, float],
             scores: dict[str, float]) -> dict[str, Any]:
    """One tier's quality, speed and cost."""
    return {"tier": name, "run": run["name"], "depth": run["depth"], "params": run["params"],
            "non_embedding_params": run["non_embedding_params"], "tokens": run["tokens"],
            "train_flops": run["train_flops"], "val_loss": run["final_val_loss"], "evals": scores,
            "inference_flops_per_token": flops_per_token(model_cfg, seq_len) // 3, **speed}
