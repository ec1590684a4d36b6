"""Shards with a fixed token budget: a prefix of a run's training split, or real tokens mixed with written ones.

The data-constrained and synthetic-data experiments train many models on different slices of one training
split. Each slice is written as an ordinary shards folder (`data.shards` format: `index.json` + flat token
files), so `train.pretrain` and its loader read it like any other: the training split holds whole documents
only (a prefix is cut at the BOS that opens the first document past the budget), and the validation split is
the source's own, linked rather than copied, so every run is scored on exactly the same tokens.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.artifacts import atomic_write_bytes, atomic_write_json
from scalelab.data.loader import INDEX, read_index
from scalelab.errors import InputError

TRAIN_FILE = "train_00000.bin"


def _split_stream(shards_dir: Path, split: str) -> np.ndarray:
    index = read_index(shards_dir)
    dtype = np.dtype(index["dtype"])
    files = index["splits"][split]
    parts = [np.memmap(Path(shards_dir) / name, dtype=dtype, mode="r")[:n]
             for name, n in zip(files["files"], files["tokens"], strict=True)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def train_stream(shards_dir: Path) -> np.ndarray:
    """The training split's whole token stream (`<bos> doc <bos> doc ...`)."""
    return _split_stream(shards_dir, "train")


def whole_prefix(stream: np.ndarray, tokens: int, bos_id: int) -> np.ndarray:
    """The longest prefix of `stream` of at most `tokens` tokens that ends where a document ends."""
    if tokens >= len(stream):
        return stream
    starts = np.flatnonzero(stream[: tokens + 1] == bos_id)
    cut = int(starts[-1]) if len(starts) else 0
    if cut == 0:
        raise InputError(f"a budget of {tokens} tokens holds no whole document; raise the unique-token budget")
    return stream[:cut]


def documents(stream: np.ndarray, bos_id: int) -> list[np.ndarray]:
    """The documents of a stream, each with its leading BOS."""
    starts = np.flatnonzero(stream == bos_id)
    return [stream[a:b] for a, b in zip(starts, [*starts[1:], len(stream)], strict=True)]


def write_shards(source: Path, out: Path, train: Sequence[np.ndarray]) -> dict[str, Any]:
    """A shards folder at `out` whose training split is the concatenation of `train` (each part BOS-first) and
    whose validation split is `source`'s (hard-linked where the file system allows)."""
    index = read_index(source)
    if not train or not len(train[0]) or int(train[0][0]) != int(index["bos_id"]):
        raise InputError(f"the training stream for {out} must start with BOS (whole documents only)")
    out.mkdir(parents=True, exist_ok=True)
    stream = np.concatenate([np.asarray(t, dtype=np.dtype(index["dtype"])) for t in train])
    atomic_write_bytes(out / TRAIN_FILE, stream.tobytes())
    for name in index["splits"]["val"]["files"]:
        target = out / name
        target.unlink(missing_ok=True)
        try:
            os.link(Path(source) / name, target)
        except OSError:
            atomic_write_bytes(target, (Path(source) / name).read_bytes())
    new = {**index, "splits": {"train": {"files": [TRAIN_FILE], "tokens": [len(stream)],
                                         "docs": int((stream == index["bos_id"]).sum())},
                               "val": index["splits"]["val"]}}
    atomic_write_json(out / INDEX, new)
    return new


def prefix_shards(source: Path, out: Path, tokens: int) -> int:
    """Shards of the first `tokens` training tokens of `source` (whole documents); returns the tokens kept."""
    index = read_index(source)
    prefix = whole_prefix(train_stream(source), tokens, int(index["bos_id"]))
    write_shards(source, out, [prefix])
    return len(prefix)
