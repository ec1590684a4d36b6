"""Pack tokenized documents into flat token shards that training reads with `numpy.memmap`.

Each split (train, val) becomes one token stream, `<|bos|> doc0 <|bos|> doc1 ...`, cut into files of
`shard_tokens` tokens (the last one shorter): `train_00000.bin`, `train_00001.bin`, ... in native-endian
`uint16` when every id fits (vocabulary ≤ 65536) and `uint32` otherwise. Concatenating a split's files
in index order gives its stream back; a document may straddle two files. BOS before every document
both marks where documents begin and makes "this document ends here" a predicted token.

`index.json` describes the shards; it is deleted first and written last, so a present index always
describes complete files (each shard itself is written atomically).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from scalelab.artifacts import atomic_write_bytes, atomic_write_json
from scalelab.errors import InputError

INDEX = "index.json"
SPLITS = ("train", "val")
# Documents per call into the Rust tokenizer: large enough that its threads stay busy, small enough
# that a batch's ids are a few MB.
ENCODE_BATCH = 2048


class ShardError(InputError):
    """Packing input or a shard folder is unusable; the message names it and the fix."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned dtype holding ids 0..vocab_size-1."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def _batches(docs: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_documents(tokenizer: PreTrainedTokenizerBase, docs: Iterable[str],
                     batch_size: int = ENCODE_BATCH) -> Iterator[list[list[int]]]:
    """Batches of token ids (no special tokens added), encoded in parallel by the Rust backend."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ShardError(f"{type(tokenizer).__name__} has no fast (Rust) backend; load the tokenizer "
                         f"with scalelab.data.tokenizer.load_tokenizer")
    # encode_batch_fast skips computing character offsets, which packing never uses.
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    for batch in _batches(docs, batch_size):
        yield [e.ids for e in encode(batch, add_special_tokens=False)]


class _ShardWriter:
    """Accumulates one split's stream and writes it out in `shard_tokens`-sized files."""

    def __init__(self, out_dir: Path, split: str, dtype: np.dtype, shard_tokens: int) -> None:
        self.out_dir, self.split, self.dtype, self.shard_tokens = out_dir, split, dtype, shard_tokens
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.files: list[str] = []
        self.tokens: list[int] = []

    def add(self, ids: np.ndarray) -> None:
        self.pending.append(ids)
        self.n_pending += len(ids)
        if self.n_pending < self.shard_tokens:
            return
        flat = np.concatenate(self.pending)
        n_full = len(flat) // self.shard_tokens
        for k in range(n_full):
            self._write(flat[k * self.shard_tokens : (k + 1) * self.shard_tokens])
        rest = flat[n_full * self.shard_tokens :]
        self.pending, self.n_pending = [rest], len(rest)

    def close(self) -> None:
        if self.n_pending:
            self._write(np.concatenate(self.pending))
        self.pending, self.n_pending = [], 0

    def _write(self, arr: np.ndarray) -> None:
        name = f"{self.split}_{len(self.files):05d}.bin"
        atomic_write_bytes(self.out_dir / name, arr.tobytes())
        self.files.append(name)
        self.tokens.append(len(arr))


def _pack_split(tokenizer: PreTrainedTokenizerBase, docs: Iterable[str], writer: _ShardWriter,
                bos_id: int, progress: bool) -> list[int]:
    doc_tokens: list[int] = []
    bar = tqdm(desc=f"pack {writer.split}", unit="doc", disable=not progress)
    for batch in encode_documents(tokenizer, docs):
        stream: list[int] = []
        for ids in batch:
            stream.append(bos_id)
            stream.extend(ids)
        # numpy refuses (OverflowError) an id that does not fit the dtype rather than wrapping it.
        writer.add(np.array(stream, dtype=writer.dtype))
        doc_tokens.extend(len(ids) + 1 for ids in batch)
        bar.update(len(batch))
    bar.close()
    writer.close()
    return doc_tokens


def pack_shards(tokenizer: PreTrainedTokenizerBase, train_docs: Iterable[str], val_docs: Iterable[str],
                out_dir: Path, shard_tokens: int = 2**24, progress: bool = False) -> dict[str, Any]:
    """Tokenize both splits into `out_dir` shards and write `index.json`; return the index.

    The returned dict is the index plus `doc_tokens`: per split, each document's token count
    including its BOS (what `scalelab.data.floor` divides by).
    """
    if shard_tokens <= 0:
        raise ShardError(f"shard_tokens={shard_tokens} must be positive")
    bos_id, pad_id = tokenizer.bos_token_id, tokenizer.pad_token_id
    if bos_id is None or pad_id is None:
        raise ShardError("the tokenizer has no bos_token or pad_token; train it with "
                         "scalelab.data.tokenizer.train_tokenizer")
    vocab_size = len(tokenizer)
    dtype = token_dtype(vocab_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INDEX).unlink(missing_ok=True)
    for old in out_dir.glob("*_[0-9][0-9][0-9][0-9][0-9].bin"):
        if old.name.split("_")[0] in SPLITS:
            old.unlink()

    index: dict[str, Any] = {"dtype": dtype.name, "vocab_size": vocab_size, "bos_id": bos_id,
                             "pad_id": pad_id, "splits": {}}
    doc_tokens: dict[str, list[int]] = {}
    for split, docs in zip(SPLITS, (train_docs, val_docs), strict=True):
        writer = _ShardWriter(out_dir, split, dtype, shard_tokens)
        doc_tokens[split] = _pack_split(tokenizer, docs, writer, bos_id, progress)
        if not doc_tokens[split]:
            raise ShardError(f"the {split} split has no documents; check the corpus source and its split")
        index["splits"][split] = {"files": writer.files, "tokens": writer.tokens, "docs": len(doc_tokens[split])}
    atomic_write_json(out_dir / INDEX, index)
    return {**index, "doc_tokens": doc_tokens}
