"""Compute accounting for reasoning: what training and sampling cost in FLOPs, and the train-vs-inference trade.

Per token, a scalelab model costs `model.flops.flops_per_token` to train (Kaplan's 6N plus attention and the
unembedding) and a third of that to run forward; any other HF model is counted as 6·N and 2·N with N its
parameter count. A reasoning step's FLOPs are its training tokens (× epochs, × inner steps) at the training
rate plus the tokens it sampled at the forward rate.

Snell et al. (2024, "Scaling LLM Test-Time Compute Optimally") ask when sampling a smaller model more beats a
larger one answering once. `compute_trade` lays each rung's curve out as accuracy against FLOPs per problem
(k samples × reply tokens × forward FLOPs/token) and, for each smaller rung, finds the k whose inference
FLOPs match the largest rung's single answer; it reports both accuracies there, and how many problems the
smaller rung's saving in training FLOPs pays for at that k (past that many problems, its inference costs more
than the larger rung's whole training bill saved).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scalelab.model.flops import flops_per_token
from scalelab.model.lm import LM


def token_flops(lm: LM, seq_len: int) -> tuple[float, float]:
    """(training, forward) FLOPs per token of `lm` at context `seq_len`."""
    cfg = getattr(lm.model, "cfg", None)
    if lm.is_scalelab and cfg is not None:
        train = float(flops_per_token(cfg, seq_len))
        return train, train / 3
    n = sum(p.numel() for p in lm.model.parameters())
    return 6.0 * n, 2.0 * n


def step_flops(lm: LM, seq_len: int, *, trained_tokens: float, sampled_tokens: float) -> float:
    train, forward = token_flops(lm, seq_len)
    return train * trained_tokens + forward * sampled_tokens


def pretrain_flops(model_dir: Path) -> float | None:
    """Training FLOPs recorded by `train.pretrain` for a ladder model (its `result.json` beside `final/`)."""
    for candidate in (Path(model_dir).parent / "result.json", Path(model_dir) / "result.json"):
        if candidate.is_file():
            flops = json.loads(candidate.read_text(encoding="utf-8")).get("train_flops")
            if flops is not None:
                return float(flops)
    return None


def compute_trade(rungs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each rung: `name`, `train_flops` (pretraining + reasoning training), `forward_flops_per_token`,
    `reply_tokens` (mean sampled reply length), `pass_at_k` and `majority_at_k` ({k: value}), `greedy`.
    Returns the curves (FLOPs per problem vs accuracy) and the inference-matched comparisons."""
    curves = []
    for r in rungs:
        per_sample = r["forward_flops_per_token"] * r["reply_tokens"]
        curves.append({"name": r["name"], "train_flops": r["train_flops"], "greedy": r["greedy"],
                       "points": [{"k": int(k), "inference_flops": int(k) * per_sample, "pass_at_k": v,
                                   "majority_at_k": r["majority_at_k"].get(k)}
                                  for k, v in sorted(r["pass_at_k"].items(), key=lambda kv: int(kv[0]))]})
    if len(curves) < 2:
        return {"curves": curves, "matched": []}
    largest = max(curves, key=lambda c: c["train_flops"])
    one = largest["points"][0]["inference_flops"] / largest["points"][0]["k"]
    matched = []
    for c in curves:
        if c is largest:
            continue
        per = c["points"][0]["inference_flops"] / c["points"][0]["k"]
        fits = [p for p in c["points"] if p["inference_flops"] <= one * 1.0001] or c["points"][:1]
        best = fits[-1]
        saved = largest["train_flops"] - c["train_flops"]
        matched.append({"small": c["name"], "large": largest["name"], "k": best["k"],
                        "small_majority_at_k": best["majority_at_k"], "small_pass_at_k": best["pass_at_k"],
                        "large_greedy": largest["greedy"], "large_pass_at_1": largest["points"][0]["pass_at_k"],
                        "inference_ratio": one / per,
                        "break_even_problems": saved / max(1e-9, best["inference_flops"] - one) if
                        best["inference_flops"] > one else None})
    return {"curves": curves, "matched": matched}
