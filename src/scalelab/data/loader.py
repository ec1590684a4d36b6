"""Batches of token windows from packed shards, deterministic, resumable and split across ranks.

A split's shards are cut into non-overlapping windows of `seq_len + 1` tokens (a window never spans
two files; the tail of a file shorter than a window is unused). Each epoch visits every window once
in an order drawn from `(seed, epoch)`, so the sequence of global batches is a pure function of the
seed: a resumed run asks for "epoch e, position p" and gets exactly the batch the uninterrupted run
would have seen. Under DDP every rank walks the same global order and takes its own contiguous
slice of each global batch, so the union over ranks is the single-process batch.

The shard format (written by `scalelab.data.shards`) is `index.json` plus flat token files; see
`read_index` for the fields this module relies on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalelab.errors import InputError, MissingInput

INDEX = "index.json"
_DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


def read_index(shards_dir: Path | str) -> dict[str, Any]:
    """The parsed and checked `index.json` of a shards directory."""
    path = Path(shards_dir) / INDEX
    if not path.is_file():
        raise MissingInput(f"{path} not found; point at a directory written by the shard packer "
                                "(`scalelab shards`)")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err}); re-run the shard packer") from err
    missing = [k for k in ("dtype", "vocab_size", "splits") if k not in index]
    if missing:
        raise InputError(f"{path} lacks {', '.join(missing)}; re-run the shard packer")
    if index["dtype"] not in _DTYPES:
        raise InputError(f"{path}: dtype {index['dtype']!r} is not one of {', '.join(_DTYPES)}")
    for name, split in index["splits"].items():
        if len(split.get("files", [])) != len(split.get("tokens", [])):
            raise InputError(f"{path}: split {name!r} lists {len(split.get('files', []))} files but "
                             f"{len(split.get('tokens', []))} token counts")
    return index


class _Windows:
    """Memory-mapped shards of one split and the (file, offset) of each window."""

    def __init__(self, shards_dir: Path, split: str, seq_len: int) -> None:
        index = read_index(shards_dir)
        if split not in index["splits"]:
            raise InputError(f"{Path(shards_dir) / INDEX} has no split {split!r}; "
                             f"it has: {', '.join(index['splits'])}")
        dtype = _DTYPES[index["dtype"]]
        self.window = seq_len + 1
        self.arrays: list[np.ndarray] = []
        starts = []
        for i, (name, n_tokens) in enumerate(zip(index["splits"][split]["files"],
                                                 index["splits"][split]["tokens"], strict=True)):
            path = Path(shards_dir) / name
            if not path.is_file():
                raise MissingInput(f"shard {path} (listed in {INDEX}) is missing")
            arr = np.memmap(path, dtype=dtype, mode="r")
            if arr.shape[0] < n_tokens:
                raise InputError(f"shard {path} holds {arr.shape[0]} tokens but {INDEX} says {n_tokens}")
            self.arrays.append(arr)
            n = int(n_tokens) // self.window
            starts.append(np.stack([np.full(n, i), np.arange(n) * self.window], axis=1))
        self.locs = np.concatenate(starts) if starts else np.zeros((0, 2), dtype=np.int64)
        self.vocab_size = int(index["vocab_size"])

    def __len__(self) -> int:
        return len(self.locs)

    def gather(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.stack([self.arrays[f][o:o + self.window] for f, o in self.locs[ids]]).astype(np.int64)
        t = torch.from_numpy(rows)
        return t[:, :-1], t[:, 1:]


class TokenLoader:
    """Shuffled training batches `(x, y)` of shape (batch_size / world_size, seq_len), int64."""

    def __init__(self, shards_dir: Path | str, split: str, batch_size: int, seq_len: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise InputError(f"train.batch_size={batch_size} must be divisible by the number of "
                             f"processes ({world_size})")
        self.windows = _Windows(Path(shards_dir), split, seq_len)
        if len(self.windows) < batch_size:
            raise InputError(f"split {split!r} of {shards_dir} has {len(self.windows)} windows of "
                             f"{seq_len + 1} tokens, fewer than one batch of {batch_size}; "
                             "use a smaller batch_size/seq_len or more data")
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.windows))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position + self.batch_size > len(self._order):  # drop the ragged tail of an epoch
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation(self.epoch)
        local = self.batch_size // self.world_size
        start = self.position + self.rank * local
        ids = self._order[start:start + local]
        self.position += self.batch_size
        return self.windows.gather(ids)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "n_windows": len(self.windows), "batch_size": self.batch_size, "seq_len": self.seq_len}

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key in ("seed", "n_windows", "batch_size", "seq_len"):
            if int(state[key]) != self.state_dict()[key]:
                raise InputError(f"loader state was saved with {key}={state[key]} but this loader has "
                                 f"{self.state_dict()[key]}; resume with the same data and train config")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation(self.epoch)


def iter_eval_batches(shards_dir: Path | str, split: str, batch_size: int, seq_len: int,
                      max_tokens: int, rank: int = 0,
                      world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The first `max_tokens // seq_len` windows of `split`, in order, this rank's share of them.

    The same fixed slice every call, so validation losses are comparable across steps and runs.
    Rank r takes windows r, r + world_size, ...; summing per-token losses over ranks gives the
    single-process total.
    """
    windows = _Windows(Path(shards_dir), split, seq_len)
    n = min(len(windows), max(1, max_tokens // seq_len))
    if n == 0:
        raise InputError(f"split {split!r} of {shards_dir} has no window of {seq_len + 1} tokens")
    mine = np.arange(rank, n, world_size)
    for start in range(0, len(mine), batch_size):
        yield windows.gather(mine[start:start + batch_size])
