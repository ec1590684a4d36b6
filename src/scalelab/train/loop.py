"""Pretraining: one function from shards on disk to a trained HF model folder and its numbers.

`pretrain` builds scalelab's Llama from a ModelConfig, trains it with AdamW on a warmup + cosine/WSD
schedule for a token budget, validates periodically, checkpoints every `ckpt_every` steps and on
SIGINT/SIGTERM, resumes from `out_dir/ckpt`, and ends by writing `out_dir/final/` (a HF folder).
It runs the same in one process and under `torchrun` (see `distributed.py`); only rank 0 writes.

Token budget: `train.tokens` if > 0, else `tokens_per_param × non-embedding params`, capped by
`train.max_tokens` if > 0; steps = ceil(tokens / (batch_size · seq_len)), and the tokens reported
are the tokens actually trained (steps · batch_size · seq_len).

With `distill` the same loop trains against a frozen teacher's logits too (`step.Distillation`); the
logged training loss is then the distillation objective, the validation loss stays plain cross-entropy.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from scalelab.artifacts import atomic_write_json
from scalelab.config import ConfigError, to_dict
from scalelab.data.loader import IGNORE, INDEX, TokenLoader, iter_eval_batches, read_index
from scalelab.errors import InputError
from scalelab.model.compiled import compile_module
from scalelab.model.config import ModelConfig
from scalelab.model.flops import count_params, train_flops
from scalelab.model.hf import save_hf
from scalelab.model.llama import Llama
from scalelab.model.precision import autocast_context, choose_precision, matmul_shapes
from scalelab.train import distributed as D
from scalelab.train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from scalelab.train.config import TrainConfig
from scalelab.train.metrics import MetricsLog
from scalelab.train.optim import build_optimizer, resolve_device
from scalelab.train.precision_probe import STEP_MARGIN, step_measure, step_probe_name
from scalelab.train.schedule import lr_multiplier, peak_lr
from scalelab.train.step import (
    Distillation,
    apply_update,
    distillation_forward,
    forward_backward,
)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept untouched."""


def token_budget(model_cfg: ModelConfig, train_cfg: TrainConfig) -> int:
    """Tokens to train on before rounding up to whole steps (see the module docstring)."""
    _, non_embedding = count_params(model_cfg)
    tokens = train_cfg.tokens if train_cfg.tokens > 0 else int(train_cfg.tokens_per_param * non_embedding)
    if train_cfg.max_tokens > 0:
        tokens = min(tokens, train_cfg.max_tokens)
    return tokens


@torch.no_grad()
def evaluate(model: Llama, shards_dir: Path, train_cfg: TrainConfig, device: torch.device,
             amp: torch.dtype | None, info: D.DistInfo) -> float:
    """Mean validation loss (nats/token) over the whole documents of the val split's first `eval_tokens`
    (`data.loader.eval_windows`): exactly the tokens the entropy floor covers."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    local_batch = max(1, train_cfg.batch_size // info.world_size)
    for x, y in iter_eval_batches(shards_dir, "val", local_batch, train_cfg.seq_len, train_cfg.eval_tokens,
                                  info.rank, info.world_size):
        x, y = x.to(device), y.to(device)
        with autocast_context(device, amp):
            logits = model(x)
        totals[0] += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE,
                                     reduction="sum").double()
        totals[1] += (y != IGNORE).sum()
    D.all_reduce_sum(totals, info)
    model.train(was_training)
    return float(totals[0] / totals[1])


class _StopSignal:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step (then it checkpoints and exits)."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_teacher(distill: Distillation, student: ModelConfig, device: torch.device) -> torch.nn.Module:
    from scalelab.model.hf import load_model

    teacher, teacher_cfg = load_model(distill.teacher_dir, device=device)
    if teacher_cfg.vocab_size != student.vocab_size:
        raise ConfigError(f"teacher {distill.teacher_dir} has vocab_size={teacher_cfg.vocab_size} but the student "
                          f"has {student.vocab_size}; distil only between models of the same tokenizer")
    return teacher


def pretrain(model_cfg: ModelConfig, train_cfg: TrainConfig, shards_dir: Path, out_dir: Path,
             tokenizer_dir: Path | None = None, resume: bool = True, name: str = "",
             distill: Distillation | None = None) -> dict[str, Any]:
    """Train a model on `shards_dir`'s train split; return its summary (also `out_dir/result.json`)."""
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    index = read_index(shards_dir)
    if "val" not in index["splits"]:
        raise InputError(f"{shards_dir / INDEX} has no 'val' split; the packer must write one for validation")
    if index["vocab_size"] > model_cfg.vocab_size:
        raise ConfigError(f"shards use vocab_size={index['vocab_size']} but model.vocab_size="
                          f"{model_cfg.vocab_size}; set model.vocab_size to at least the tokenizer's")
    if train_cfg.seq_len > model_cfg.max_seq_len:
        raise ConfigError(f"train.seq_len={train_cfg.seq_len} exceeds model.max_seq_len={model_cfg.max_seq_len}")
    device0 = resolve_device(train_cfg)
    info = D.init_distributed(device0.type)
    try:
        return _run(model_cfg, train_cfg, shards_dir, out_dir, tokenizer_dir, resume, name, info,
                    D.device_for(info, device0), distill)
    finally:
        D.shutdown(info)


def _run(model_cfg: ModelConfig, train_cfg: TrainConfig, shards_dir: Path, out_dir: Path,
         tokenizer_dir: Path | None, resume: bool, name: str, info: D.DistInfo,
         device: torch.device, distill: Distillation | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    tokens_per_step = train_cfg.batch_size * train_cfg.seq_len
    rows = tokens_per_step // info.world_size
    steps = math.ceil(token_budget(model_cfg, train_cfg) / tokens_per_step)
    _seed_everything(train_cfg.seed)
    model = Llama(model_cfg).to(device)
    shapes = matmul_shapes(model_cfg.d_model, model_cfg.d_ff, model_cfg.vocab_size, rows)
    if info.world_size == 1:  # one process: time the step itself (train.precision_probe); ranks must agree
        batch = rows // train_cfg.seq_len
        precision = choose_precision(train_cfg.dtype, device, shapes, probe=step_probe_name(model_cfg, batch,
                                                                                            train_cfg.seq_len),
                                     measure=step_measure(model, model_cfg, batch, train_cfg.seq_len, device),
                                     margin=STEP_MARGIN)
    else:
        precision = choose_precision(train_cfg.dtype, device, shapes)
    amp = precision.autocast
    lr = peak_lr(train_cfg, model_cfg.d_model)
    optimizer = build_optimizer(model, train_cfg, lr)
    loader = TokenLoader(shards_dir, "train", train_cfg.batch_size, train_cfg.seq_len, train_cfg.seed,
                         info.rank, info.world_size)
    run_key = {"model": to_dict(model_cfg), "steps": steps, "peak_lr": lr}
    if distill is not None:
        run_key["distill"] = {**vars(distill), "teacher_dir": str(distill.teacher_dir)}
    ckpt_dir = out_dir / "ckpt"
    start_step, extra, resumed = 0, {"wall_seconds": 0.0}, False
    latest = latest_checkpoint(ckpt_dir) if resume else None
    if latest is not None:
        state = load_checkpoint(latest, model, optimizer)
        if state["extra"].get("run_key") != run_key:
            raise CheckpointError(f"checkpoint {latest} was written for a different model/budget/lr "
                                  f"({state['extra'].get('run_key')}); use another out_dir or resume=False")
        loader.load_state_dict(state["loader"])
        start_step, extra, resumed = int(state["step"]), state["extra"], True
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(out_dir, enabled=info.is_main, resume_step=start_step if resumed else None)
    net = D.wrap_model(model, info)
    forward = compile_module(net) if train_cfg.compile else net
    if distill is not None:
        forward = distillation_forward(forward, _load_teacher(distill, model_cfg, device), distill)
    params = list(model.parameters())

    def tokens_per_second() -> float | None:
        # a call that trained nothing (the run was already complete) reports the speed it finished at
        return trained_steps * tokens_per_step / train_time if train_time else extra.get("tokens_per_second")

    def checkpoint(step: int) -> None:
        if info.is_main:
            save_checkpoint(ckpt_dir, step, model, optimizer, loader.state_dict(),
                            {"run_key": run_key, "tokens_per_second": tokens_per_second(),
                             "wall_seconds": extra["wall_seconds"] + time.perf_counter() - started})
        D.barrier(info)

    bar = tqdm(total=steps, initial=start_step, disable=not (train_cfg.progress and info.is_main),
               unit="step", dynamic_ncols=True, desc=name or f"depth {model_cfg.depth}")
    if train_cfg.progress and info.is_main:
        bar.write(f"{name or f'depth {model_cfg.depth}'}: precision {precision.describe()}")
    train_time, trained_steps, val_loss = 0.0, 0, None
    model.train()
    with _StopSignal() as stop:
        for step in range(start_step, steps):
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_multiplier(step, steps, train_cfg)
            x, y = (t.to(device, non_blocking=True) for t in loader.next_batch())
            loss, grad_norm = forward_backward(forward, params, x, y, device, amp, train_cfg.grad_clip)
            # one small all-reduce carries the loss for logging and the stop flag to every rank
            shared = torch.tensor([loss.item(), float(stop.signum)], dtype=torch.float64, device=device)
            D.all_reduce_sum(shared, info)
            loss_value = shared[0].item() / info.world_size
            if not math.isfinite(loss_value) or not math.isfinite(float(grad_norm)):
                bar.close()
                metrics.close()
                kept = latest_checkpoint(ckpt_dir)
                raise NonFiniteLossError(
                    f"loss became {loss_value} (grad norm {float(grad_norm)}) at step {step + 1}; stopped. "
                    f"The last good checkpoint is {kept or 'none (no checkpoint was written yet)'}. "
                    "Lower train.lr or train.grad_clip, or check the data.")
            apply_update(optimizer)
            done = step + 1
            train_time += time.perf_counter() - t0
            trained_steps += 1
            tok_s = trained_steps * tokens_per_step / train_time
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tok_s:,.0f}", dtype=precision.dtype, refresh=False)
            if done % train_cfg.log_every == 0 or done == steps:
                metrics.log(done, loss=loss_value, lr=optimizer.param_groups[0]["lr"],
                            grad_norm=float(grad_norm), tokens=done * tokens_per_step, tok_per_s=tok_s)
            if (train_cfg.eval_every > 0 and done % train_cfg.eval_every == 0) or done == steps:
                val_loss = evaluate(model, shards_dir, train_cfg, device, amp, info)
                metrics.log(done, val_loss=val_loss)
            if done == steps or (train_cfg.ckpt_every > 0 and done % train_cfg.ckpt_every == 0):
                checkpoint(done)
            if shared[1].item() > 0:
                checkpoint(done)
                bar.close()
                metrics.close()
                signum = int(stop.signum) or signal.SIGTERM
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt(f"interrupted at step {done}; checkpoint saved in {ckpt_dir}")
                raise SystemExit(128 + signum)
    bar.close()
    if val_loss is None:  # the run was already complete: nothing trained in this call
        val_loss = evaluate(model, shards_dir, train_cfg, device, amp, info)
    metrics.close()
    total, non_embedding = count_params(model_cfg)
    tokens = steps * tokens_per_step
    result = {
        "name": name or f"depth{model_cfg.depth}",
        "params": total,
        "non_embedding_params": non_embedding,
        "tokens": tokens,
        "train_flops": train_flops(model_cfg, tokens, train_cfg.seq_len),
        "final_val_loss": val_loss,
        "tokens_per_second": tokens_per_second(),
        "steps": steps,
        "wall_seconds": extra["wall_seconds"] + time.perf_counter() - started,
        "world_size": info.world_size,
        "device": str(device),
        "dtype": precision.dtype,
        "precision": precision.to_json(),
    }
    if info.is_main:
        save_hf(model, out_dir / "final", tokenizer_dir)
        atomic_write_json(out_dir / "result.json", result)
    D.barrier(info)
    return result
