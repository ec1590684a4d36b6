"""Batches of token windows from packed shards, deterministic, resumable and split across ranks.

Training windows are `seq_len + 1` tokens that each start at a document's BOS (as nanochat packs): a
window runs on through the documents that follow, and the next window starts at the BOS of the first
document the previous one cut (a window never spans two files). A model so never reads a sentence whose
document began before its window — which entity an encyclopedia entry is about, who a story's hero is —
and every document is read whole at least once an epoch (one longer than a window loses its tail).
Each epoch visits every window once in an order drawn from `(seed, epoch)`, so the sequence of global
batches is a pure function of the seed: a resumed run asks for "epoch e, position p" and gets exactly the
batch the uninterrupted run would have seen. Under DDP every rank walks the same global order and takes
its own contiguous slice of each global batch, so the union over ranks is the single-process batch.

Validation scores whole documents only (`eval_windows`): the first documents of the val split, packed
BOS-first into windows without cutting any, each token predicted with its whole document in view, and
each document's closing BOS (its end) predicted too. Those are exactly the tokens the entropy floor
(`data.floor`) is computed over (`eval_documents`), so the floor is a bound a model can reach.

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
    missing = [k for k in ("dtype", "vocab_size", "bos_id", "splits") if k not in index]
    if missing:
        raise InputError(f"{path} lacks {', '.join(missing)}; re-run the shard packer")
    if index["dtype"] not in _DTYPES:
        raise InputError(f"{path}: dtype {index['dtype']!r} is not one of {', '.join(_DTYPES)}")
    for name, split in index["splits"].items():
        if len(split.get("files", [])) != len(split.get("tokens", [])):
            raise InputError(f"{path}: split {name!r} lists {len(split.get('files', []))} files but "
                             f"{len(split.get('tokens', []))} token counts")
    return index


IGNORE = -100  # a target that carries no loss (padding after a validation window's last whole document)


def aligned_starts(bos: np.ndarray, n_tokens: int, window: int) -> np.ndarray:
    """Window starts at document boundaries (`bos`: sorted BOS offsets in one file of `n_tokens`): each window
    starts at the BOS of the first document the previous window did not hold whole."""
    starts: list[int] = []
    if len(bos) == 0:
        return np.zeros(0, dtype=np.int64)
    k = 0
    while k < len(bos) and bos[k] + window <= n_tokens:
        start = int(bos[k])
        starts.append(start)
        # the last BOS inside the window opens the document it cuts (or ends the last whole one)
        nxt = int(np.searchsorted(bos, start + window - 1, side="right")) - 1
        k = nxt if nxt > k else k + 1  # one document longer than the window: go on to the next one
    return np.asarray(starts, dtype=np.int64)


class _Windows:
    """Memory-mapped shards of one split and the (file, offset) of each BOS-aligned window."""

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
            offsets = aligned_starts(np.flatnonzero(arr[:n_tokens] == index["bos_id"]), int(n_tokens), self.window)
            starts.append(np.stack([np.full(len(offsets), i), offsets], axis=1))
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


def eval_windows(shards_dir: Path | str, split: str, seq_len: int,
                 max_tokens: int) -> tuple[list[tuple[int, int, int]], list[int]]:
    """The validation windows and the documents they score, in stream order.

    A window is (file, start, end): its input is tokens [start, end), its targets [start + 1, end], and it
    holds whole documents only — it starts at a document's BOS and ends at the BOS that closes its last
    document. Documents are taken in order until `max_tokens` targets are reached; one longer than a window,
    or straddling two files, is skipped. Returns the windows and the scored documents' indices in the split.
    """
    index = read_index(shards_dir)
    if split not in index["splits"]:
        raise InputError(f"{Path(shards_dir) / INDEX} has no split {split!r}; it has: {', '.join(index['splits'])}")
    dtype = _DTYPES[index["dtype"]]
    windows: list[tuple[int, int, int]] = []
    docs: list[int] = []
    doc_base, scored = 0, 0
    for f, (name, n_tokens) in enumerate(zip(index["splits"][split]["files"], index["splits"][split]["tokens"],
                                             strict=True)):
        arr = np.memmap(Path(shards_dir) / name, dtype=dtype, mode="r")[:n_tokens]
        bos = np.flatnonzero(arr == index["bos_id"])
        # a document straddling two files is counted in the first and scored in neither
        j = 0
        while j + 1 < len(bos) and scored < max_tokens:
            start, end = int(bos[j]), int(bos[j + 1])
            if end - start > seq_len:  # too long to read whole in one window
                j += 1
                continue
            k = j + 1  # pack the documents that follow while they fit whole
            while k + 1 < len(bos) and int(bos[k + 1]) - start <= seq_len:
                k += 1
            end = int(bos[k])
            windows.append((f, start, end))
            docs.extend(doc_base + d for d in range(j, k))
            scored += end - start
            j = k
        doc_base += len(bos)
    if not windows:
        raise InputError(f"split {split!r} of {shards_dir} has no document short enough to read whole in a window "
                         f"of {seq_len + 1} tokens; use a longer train.seq_len")
    return windows, docs


def iter_eval_batches(shards_dir: Path | str, split: str, batch_size: int, seq_len: int,
                      max_tokens: int, rank: int = 0,
                      world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The validation windows (`eval_windows`) as (x, y) batches, this rank's share of them; targets after a
    window's last document are `IGNORE`.

    The same documents every call, so validation losses are comparable across steps and runs. Rank r takes
    windows r, r + world_size, ...; summing per-token losses over ranks gives the single-process total.
    """
    index = read_index(shards_dir)
    dtype = _DTYPES[index["dtype"]]
    files = index["splits"][split]["files"]
    arrays = [np.memmap(Path(shards_dir) / name, dtype=dtype, mode="r") for name in files]
    windows, _ = eval_windows(shards_dir, split, seq_len, max_tokens)
    mine = windows[rank::world_size]
    for b in range(0, len(mine), batch_size):
        chunk = mine[b:b + batch_size]
        x = torch.full((len(chunk), seq_len), int(index["pad_id"]), dtype=torch.long)
        y = torch.full((len(chunk), seq_len), IGNORE, dtype=torch.long)
        for r, (f, start, end) in enumerate(chunk):
            tokens = torch.from_numpy(arrays[f][start:end + 1].astype(np.int64))
            x[r, :end - start] = tokens[:-1]
            y[r, :end - start] = tokens[1:]
        yield x, y
