"""Activation cache: a site's activations on disk in fixed-size memmap shards, read back shuffled.

Caching once and training many SAEs (or one SAE for several epochs) on the same activations is how
SAELens and sparsify reach their throughput; the cache also lets peers be benchmarked on identical
inputs. A shard holds `rows_per_shard` activation rows, chosen so one shard fits the memory budget,
and reading holds at most one shard in memory at a time while shuffling shard order and the rows
within each shard. Rows are stored as fp32, or as bf16 (kept as uint16 bit patterns because numpy has
no bfloat16). Position 0 (the BOS / attention-sink position) is dropped by default: its norm dwarfs the
others in real models (NOTES.md), so keeping it makes every metric describe that one position.
Later positions can be sinks too: on SmolLM2's layer 15, 11 of 98,304 rows at position 1 had 26-157x the
median norm and held 83% of the variance (one held-out token was 75% of the evaluation set's variance),
so FVU measured mostly whether those few tokens were reconstructed. Rows whose norm exceeds
`max_norm_factor` x the batch's median norm are therefore dropped as well (`massive_rows`), and counted.
The model's forward passes run in the `precision` given (bf16 autocast where `dtype=auto` measured it faster,
`model.precision`); the rows are stored from fp32 copies either way, and cache.json records the precision.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from scalelab.artifacts import atomic_write_json
from scalelab.errors import InputError, MissingInput
from scalelab.interp.sites import Site, read_site
from scalelab.model.precision import FP32, Precision

INDEX = "cache.json"
# Ordinary rows stay within ~1.5x the median norm on the models measured (SmolLM2 layer 15: 0.8-1.2x at the
# 1st/99th percentile); attention sinks sit at 26x and above. 10x separates them with room on both sides.
MAX_NORM_FACTOR = 10.0
_DTYPES = {"fp32": (np.float32, torch.float32), "bf16": (np.uint16, torch.bfloat16)}


def check_finite(x: torch.Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{what} holds {bad} NaN/inf values; the model or its input is broken "
                         "(check the checkpoint, or use fp32 instead of bf16)")


def massive_rows(acts: torch.Tensor, factor: float | None = MAX_NORM_FACTOR) -> torch.Tensor:
    """Boolean mask over rows (N, d) of attention-sink activations: norm > `factor` x the median row norm."""
    if factor is None or len(acts) == 0:
        return torch.zeros(len(acts), dtype=torch.bool)
    norms = acts.float().norm(dim=-1)
    return norms > factor * norms.median()


class ActivationCache:
    """A directory of activation shards plus `cache.json` (site, d_in, dtype, rows per shard)."""

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        index = self.dir / INDEX
        if not index.is_file():
            raise MissingInput(f"{self.dir} has no {INDEX}; build it with ActivationCache.build")
        self.meta: dict[str, Any] = json.loads(index.read_text("utf-8"))
        self.d_in = int(self.meta["d_in"])
        self.n_rows = int(self.meta["n_rows"])

    def _shard(self, i: int) -> torch.Tensor:
        t_dtype = _DTYPES[self.meta["dtype"]][1]
        arr = np.load(self.dir / self.meta["shards"][i], mmap_mode="r")
        t = torch.from_numpy(np.array(arr))  # a private copy: the memmap is read-only
        return t.view(t_dtype).float() if t_dtype is torch.bfloat16 else t

    def iter_batches(self, batch_size: int, shuffle: bool = True, seed: int = 0,
                     max_rows: int | None = None) -> Iterator[torch.Tensor]:
        """fp32 batches of rows; the last, smaller batch of a pass is dropped so steps are uniform."""
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self.meta["shards"]), generator=g) if shuffle else range(len(self.meta["shards"]))
        carry: torch.Tensor | None = None
        served = 0
        for i in order:
            rows = self._shard(int(i))
            if shuffle:
                rows = rows[torch.randperm(len(rows), generator=g)]
            if carry is not None:
                rows = torch.cat([carry, rows])
            n_full = len(rows) // batch_size * batch_size
            for s in range(0, n_full, batch_size):
                if max_rows is not None and served + batch_size > max_rows:
                    return
                served += batch_size
                yield rows[s:s + batch_size]
            carry = rows[n_full:]

    def all_rows(self, max_rows: int | None = None) -> torch.Tensor:
        parts, total = [], 0
        for i in range(len(self.meta["shards"])):
            parts.append(self._shard(i))
            total += len(parts[-1])
            if max_rows is not None and total >= max_rows:
                break
        return torch.cat(parts)[:max_rows]

    @classmethod
    def build(cls, model: nn.Module, site: Site, batches: Iterable[torch.Tensor], out_dir: Path | str,
              n_rows: int, dtype: str = "fp32", memory_mb: int = 256, skip_positions: int = 1,
              progress: bool = True, meta: dict[str, Any] | None = None,
              max_norm_factor: float | None = MAX_NORM_FACTOR, precision: Precision = FP32) -> ActivationCache:
        """Run `batches` of token ids (B, T) through `model` in `precision`, keeping `n_rows` site activations.

        The first `skip_positions` positions of each sequence are left out, and so are rows more than
        `max_norm_factor` x the batch's median norm (None keeps them; see the module docstring).
        """
        if dtype not in _DTYPES:
            raise InputError(f"cache dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np_dtype, t_dtype = _DTYPES[dtype]
        shards: list[str] = []
        buf: np.ndarray | None = None
        filled, total, rows_per_shard, d_in, dropped = 0, 0, 0, 0, 0
        bar = tqdm(total=n_rows, desc=f"activations {site.name} ({precision.dtype})", unit="tok",
                   disable=not progress)
        if progress:
            bar.write(f"activations {site.name}: precision {precision.describe()}")
        device = next(model.parameters()).device
        for ids in batches:
            with precision.context(device):
                acts = read_site(model, site, ids)[:, skip_positions:]
            acts = acts.reshape(-1, acts.shape[-1]).float()
            check_finite(acts, f"activations at site {site.name}")
            massive = massive_rows(acts, max_norm_factor)
            dropped += int(massive.sum())
            acts = acts[~massive]
            if buf is None:
                d_in = acts.shape[-1]
                rows_per_shard = max(1024, memory_mb * 2**20 // (d_in * np.dtype(np_dtype).itemsize))
            start = 0
            while start < len(acts) and total < n_rows:
                if buf is None or filled == len(buf):
                    name = f"acts_{len(shards):05d}.npy"
                    size = min(rows_per_shard, n_rows - total)
                    buf = np.lib.format.open_memmap(out / name, mode="w+", dtype=np_dtype, shape=(size, d_in))
                    shards.append(name)
                    filled = 0
                take = min(len(acts) - start, len(buf) - filled)
                chunk = acts[start:start + take].to(t_dtype)
                buf[filled:filled + take] = (chunk.view(torch.uint16) if t_dtype is torch.bfloat16 else chunk).numpy()
                filled, start, total = filled + take, start + take, total + take
                bar.update(take)
            if total >= n_rows:
                break
        bar.close()
        if buf is not None:
            buf.flush()
        if total < n_rows:
            raise InputError(f"the token batches gave only {total} activation rows, fewer than the {n_rows} asked "
                             "for; give more text or ask for fewer tokens")
        atomic_write_json(out / INDEX, {"site": site.name, "d_in": d_in, "dtype": dtype, "n_rows": total,
                                        "rows_per_shard": rows_per_shard, "shards": shards,
                                        "skip_positions": skip_positions, "max_norm_factor": max_norm_factor,
                                        "massive_rows_dropped": dropped, "forward_dtype": precision.dtype,
                                        "precision": precision.to_json(), **(meta or {})})
        return cls(out)

    @classmethod
    def from_rows(cls, rows: torch.Tensor, out_dir: Path | str, site: str, memory_mb: int = 256) -> ActivationCache:
        """A cache holding given fp32 rows (N, d): to split a cache, or to store activations made elsewhere."""
        check_finite(rows, f"activation rows for site {site}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        per = max(1024, memory_mb * 2**20 // (rows.shape[1] * 4))
        shards = []
        for i, s in enumerate(range(0, len(rows), per)):
            name = f"acts_{i:05d}.npy"
            np.save(out / name, rows[s:s + per].float().numpy())
            shards.append(name)
        atomic_write_json(out / INDEX, {"site": site, "d_in": rows.shape[1], "dtype": "fp32", "n_rows": len(rows),
                                        "rows_per_shard": per, "shards": shards, "skip_positions": None})
        return cls(out)

