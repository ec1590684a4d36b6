"""The token loader: BOS-aligned windows, deterministic order, exact resume, DDP slices, whole-document validation,
clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_shards
from scalelab.data.loader import IGNORE, TokenLoader, aligned_starts, eval_windows, iter_eval_batches


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shards(tmp_path_factory.mktemp("loader"), 20_000, 500, seed=0)


def test_batches_have_the_right_shape_and_targets_are_shifted_inputs(shards: Path) -> None:
    loader = TokenLoader(shards, "train", batch_size=4, seq_len=32, seed=0)
    x, y = loader.next_batch()
    assert x.shape == y.shape == (4, 32) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])


BOS = 1


def _document_shards(tmp_path: Path, lengths: list[list[int]]) -> Path:
    """Shards of documents whose tokens name them: document d (counted over the split) is BOS then its length - 1
    tokens of value 2 + d, so a window's tokens say which documents it holds and whether whole."""
    files, tokens, d = [], [], 0
    for i, docs in enumerate(lengths):
        stream = []
        for n in docs:
            stream += [BOS] + [2 + d] * (n - 1)
            d += 1
        np.asarray(stream, dtype=np.uint32).tofile(tmp_path / f"p{i}.bin")
        files.append(f"p{i}.bin")
        tokens.append(len(stream))
    index = {"dtype": "uint32", "vocab_size": 2 + d, "bos_id": BOS, "pad_id": 0,
             "splits": {"train": {"files": files, "tokens": tokens}, "val": {"files": files, "tokens": tokens}}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    return tmp_path


def test_windows_start_at_a_bos_and_every_document_is_read_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lengths = [[int(n) for n in rng.integers(3, 15, 120)], [int(n) for n in rng.integers(3, 15, 90)] + [40]]
    shards = _document_shards(tmp_path, lengths)
    loader = TokenLoader(shards, "train", batch_size=4, seq_len=19, seed=1)
    rows = [torch.cat([x, y[:, -1:]], dim=1) for x, y in (loader.next_batch() for _ in range(len(loader.windows) // 4))]
    windows = torch.cat(rows).tolist()
    assert all(w[0] == BOS for w in windows)  # no window starts mid-document
    whole = set()
    for w in windows:  # a document is whole in a window when its BOS and all its tokens are in it
        for k, t in enumerate(w):
            if t == BOS and k + 1 < len(w):
                d = w[k + 1] - 2
                n = sum(1 for u in w[k + 1:] if u == 2 + d) + 1
                if n == lengths_flat(lengths)[d]:
                    whole.add(d)
    # every document that fits a window (and lies within one file) is read whole at least once an epoch,
    # except where a batch's ragged tail is dropped
    fits = {d for d, n in enumerate(lengths_flat(lengths)) if n <= 20}
    dropped = len(loader.windows) % 4
    assert len(fits - whole) <= 2 * dropped + 2, sorted(fits - whole)[:10]
    assert 40 - 1 + 2 not in {t for w in windows for t in w[:1]}  # the 40-token document is cut, never a start
    second = torch.cat([loader.next_batch()[0] for _ in range(len(loader.windows) // 4)])
    assert not torch.equal(torch.cat([r[:, :-1] for r in rows]), second)  # a new order each epoch


def lengths_flat(lengths: list[list[int]]) -> list[int]:
    return [n for docs in lengths for n in docs]


def test_aligned_starts_skip_a_document_longer_than_a_window() -> None:
    bos = np.array([0, 5, 30, 33, 37])
    # from 0: doc 0 whole, doc 5 cut, so the next starts at 5; doc 5 (25 tokens) is longer than a window, so the
    # one after starts at the next document, 30; from 30: docs 30 and 33 whole, 37 cut, but 37 + 10 > 45
    assert aligned_starts(bos, 45, 10).tolist() == [0, 5, 30]
    assert aligned_starts(np.array([], dtype=np.int64), 45, 10).tolist() == []


def test_validation_scores_whole_documents_once_in_stream_order(tmp_path: Path) -> None:
    lengths = [[5, 7, 30, 4, 6, 9, 3], [8, 2, 6]]
    shards = _document_shards(tmp_path, lengths)
    windows, docs = eval_windows(shards, "val", seq_len=12, max_tokens=10_000)
    # document 2 (30 tokens) cannot be read whole in 13; the last of each file has no closing BOS there
    assert docs == [0, 1, 3, 4, 5, 7, 8]
    scored = 0
    for x, y in iter_eval_batches(shards, "val", batch_size=2, seq_len=12, max_tokens=10_000):
        for xr, yr in zip(x.tolist(), y.tolist(), strict=True):
            targets = [t for t in yr if t != IGNORE]
            assert xr[0] == BOS and targets[-1] == BOS  # starts at a document, ends with its last one's end
            scored += len(targets)
    assert scored == sum(lengths_flat(lengths)[d] for d in docs)  # each document's tokens + its closing BOS
    split = [[x for x, _ in iter_eval_batches(shards, "val", 2, 12, 10_000, r, 2)] for r in range(2)]
    assert sum(len(x) for part in split for x in part) == len(windows)


def test_same_seed_same_batches_different_seed_different(shards: Path) -> None:
    a, b, c = (TokenLoader(shards, "train", 4, 32, seed=s) for s in (0, 0, 1))
    for _ in range(3):
        xa, xb, xc = a.next_batch()[0], b.next_batch()[0], c.next_batch()[0]
        assert torch.equal(xa, xb)
    assert not torch.equal(xa, xc)


def test_state_dict_resumes_on_exactly_the_next_batch(shards: Path) -> None:
    loader = TokenLoader(shards, "train", 8, 63, seed=2)
    per_epoch = len(loader.windows) // 8
    for _ in range(per_epoch - 1):  # the next batches cross an epoch boundary
        loader.next_batch()
    state = json.loads(json.dumps(loader.state_dict()))  # survives a JSON round trip
    expected = [loader.next_batch()[0] for _ in range(3)]
    fresh = TokenLoader(shards, "train", 8, 63, seed=2)
    fresh.load_state_dict(state)
    assert all(torch.equal(e, fresh.next_batch()[0]) for e in expected)
    other = TokenLoader(shards, "train", 4, 63, seed=2)
    with pytest.raises(ValueError, match="batch_size"):
        other.load_state_dict(state)


def test_ranks_split_the_global_batch(shards: Path) -> None:
    whole = TokenLoader(shards, "train", 8, 32, seed=3)
    ranks = [TokenLoader(shards, "train", 8, 32, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(4):
        x, _ = whole.next_batch()
        parts = [r.next_batch()[0] for r in ranks]
        assert parts[0].shape == (4, 32)
        assert torch.equal(torch.cat(parts), x)
    with pytest.raises(ValueError, match="divisible"):
        TokenLoader(shards, "train", 7, 32, seed=0, world_size=2)


def test_eval_batches_are_a_fixed_set_shared_by_ranks(shards: Path) -> None:
    batches = list(iter_eval_batches(shards, "val", 3, 128, max_tokens=1280))
    assert sum(int((y != IGNORE).sum()) for _, y in batches) >= 1280
    again = list(iter_eval_batches(shards, "val", 3, 128, max_tokens=1280))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    split = [torch.cat([x for x, _ in iter_eval_batches(shards, "val", 3, 128, 1280, r, 2)]) for r in range(2)]
    assert sorted(map(tuple, torch.cat(split).tolist())) == sorted(map(tuple, torch.cat(
        [x for x, _ in batches]).tolist()))


def test_uint32_shards_are_read(tmp_path: Path) -> None:
    tokens = (np.arange(1000) % 100).astype(np.uint32) + 70_000  # a document every 100 tokens, BOS = 70,000
    tokens.tofile(tmp_path / "t.bin")
    index = {"dtype": "uint32", "vocab_size": 80_000, "bos_id": 70_000, "pad_id": 1,
             "splits": {"train": {"files": ["t.bin"], "tokens": [1000]}}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    x, y = TokenLoader(tmp_path, "train", 2, 9, seed=0).next_batch()
    assert int(x.min()) >= 70_000 and torch.equal(y - x, torch.ones_like(x))


def test_missing_or_invalid_index_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"index\.json"):
        TokenLoader(tmp_path, "train", 2, 8, seed=0)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"index\.json"):
        TokenLoader(tmp_path, "train", 2, 8, seed=0)
    (tmp_path / "index.json").write_text(json.dumps({"dtype": "int8", "vocab_size": 5, "bos_id": 0, "splits": {}}))
    with pytest.raises(ValueError, match="dtype"):
        TokenLoader(tmp_path, "train", 2, 8, seed=0)


def test_unknown_split_and_too_little_data_are_clear_errors(shards: Path) -> None:
    with pytest.raises(ValueError, match="no split 'test'"):
        TokenLoader(shards, "test", 2, 8, seed=0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        TokenLoader(shards, "val", 4096, 255, seed=0)
