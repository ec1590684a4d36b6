"""Behaviour cloning for the pixel agent: oracle demonstrations on train seeds, then supervised training.

Demonstrations are the oracle's successful episodes on train seeds (`suite.seed_for("train", i)`), each
step a (screenshot, instruction, previous action kind, step index) -> action pair; steps the pixel heads
cannot express (a ctrl-click, a key other than Enter) are left out and counted. Training is plain
cross-entropy on every head the step's action uses, for a wall-clock budget, on one CPU thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scalelab.computer.agents.oracle import OracleAgent
from scalelab.computer.agents.pixel import (
    KINDS,
    PixelPolicy,
    cell_index,
    encode_image,
    encode_text,
    label,
    save_policy,
)
from scalelab.computer.runner import play_episode
from scalelab.computer.suite import Task


@dataclass
class Demos:
    """Stacked training arrays; `targets` hold -1 where a head does not apply."""

    images: np.ndarray
    ids: np.ndarray
    tfeats: np.ndarray
    prev: np.ndarray
    step: np.ndarray
    targets: dict[str, np.ndarray]
    episodes: int
    dropped_steps: int

    def __len__(self) -> int:
        return len(self.images)

    def subset_episodes(self, keep: np.ndarray) -> Demos:
        return Demos(self.images[keep], self.ids[keep], self.tfeats[keep], self.prev[keep], self.step[keep],
                     {k: v[keep] for k, v in self.targets.items()}, self.episodes, self.dropped_steps)


def collect_demos(computer: Any, tasks: list[Task], per_task: int, grid: tuple[int, int],
                  log: Callable[[str], None] | None = None) -> tuple[Demos, np.ndarray]:
    """Oracle episodes on train seeds 0..per_task-1; returns demos and each sample's episode index."""
    rows: list[dict[str, Any]] = []
    episode_of: list[int] = []
    dropped = n_eps = 0
    oracle = OracleAgent()
    for task in tasks:
        for i in range(per_task):
            steps: list[tuple[dict[str, Any], dict[str, Any]]] = []
            ep = play_episode(computer, oracle, task, "train", i, on_step=lambda o, a, s=steps: s.append((o, a)))
            if not ep.success:
                continue
            n_eps += 1
            prev = len(KINDS)
            for k, (obs, action) in enumerate(steps):
                lab = label(action, obs["utterance"])
                if lab is None:
                    dropped += 1
                    continue
                ids, feats = encode_text(obs["utterance"])
                rows.append({"image": encode_image(obs["screenshot"]), "ids": ids, "tfeat": feats, "prev": prev,
                             "step": k, **lab})
                episode_of.append(i)
                prev = lab["kind"]
        if log:
            log(f"  demos {task.name:28s} {len(rows)} steps so far")

    def col(key: str, fn: Callable[[Any], int] = int) -> np.ndarray:
        return np.array([fn(r[key]) if key in r else -1 for r in rows], dtype=np.int64)

    targets = {"kind": col("kind"), "click": col("click", lambda xy: cell_index(grid, xy)),
               "drop": col("drop", lambda xy: cell_index(grid, xy)), "amount": col("amount"),
               "start": col("start"), "end": col("end"), "transform": col("transform")}
    demos = Demos(np.stack([r["image"] for r in rows]), np.stack([r["ids"] for r in rows]),
                  np.stack([r["tfeat"] for r in rows]), col("prev"), col("step"), targets, n_eps, dropped)
    return demos, np.array(episode_of)


def bc_loss(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = F.cross_entropy(out["kind"], tgt["kind"])
    for head in ("click", "drop", "amount", "start", "end", "transform"):
        m = tgt[head] >= 0
        if m.any():
            logits = out[head][m]
            if head == "end":  # the end is an offset from the start, within 6 words
                padded = F.pad(logits, (0, 6), value=-1e4)
                logits = torch.stack([row[s:s + 6] for row, s in zip(padded, tgt["start"][m].tolist(), strict=True)])
            loss = loss + F.cross_entropy(logits, tgt[head][m])
    return loss


def train_pixel(demos: Demos, out_dir: Path, *, width: int = 32, seconds: float = 600.0, batch: int = 64,
                lr: float = 2e-3, seed: int = 0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train a PixelPolicy on `demos` for a wall-clock budget; save it to `out_dir`; return the record."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # small model, shared machine: one thread is the fastest per core
    model = PixelPolicy(width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    n = len(demos)
    t0 = time.perf_counter()
    steps, losses = 0, []
    while time.perf_counter() - t0 < seconds:
        idx = rng.integers(0, n, size=min(batch, n))
        out = model(torch.from_numpy(demos.images[idx]), torch.from_numpy(demos.ids[idx]),
                    torch.from_numpy(demos.tfeats[idx]), torch.from_numpy(demos.prev[idx]),
                    torch.from_numpy(demos.step[idx]))
        loss = bc_loss(out, {k: torch.from_numpy(v[idx]) for k, v in demos.targets.items()})
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        losses.append(loss.item())
        if log and steps % 200 == 0:
            log(f"  step {steps}  loss {np.mean(losses[-200:]):.3f}  {time.perf_counter() - t0:.0f}s")
    record = {"width": width, "params": sum(p.numel() for p in model.parameters()), "train_seconds":
              round(time.perf_counter() - t0, 1), "steps": steps, "samples": n, "demo_episodes": demos.episodes,
              "dropped_steps": demos.dropped_steps, "final_loss": float(np.mean(losses[-50:])) if losses else None,
              "batch": batch, "lr": lr, "seed": seed}
    save_policy(model.eval(), out_dir, record)
    return record
