"""The token loader: deterministic, non-overlapping windows, exact resume, DDP slices, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_shards
from scalelab.data.loader import TokenLoader, iter_eval_batches


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shards(tmp_path_factory.mktemp("loader"), 20_000, 500, seed=0)


def test_batches_have_the_right_shape_and_targets_are_shifted_inputs(shards: Path) -> None:
    loader = TokenLoader(shards, "train", batch_size=4, seq_len=32, seed=0)
    x, y = loader.next_batch()
    assert x.shape == y.shape == (4, 32) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])


def _position_shards(tmp_path: Path, lengths: list[int]) -> Path:
    """Shards whose every token is its own global position, so a window's tokens identify it."""
    files, start = [], 0
    for i, n in enumerate(lengths):
        (np.arange(start, start + n, dtype=np.uint32)).tofile(tmp_path / f"p{i}.bin")
        files.append(f"p{i}.bin")
        start += n
    index = {"dtype": "uint32", "vocab_size": start, "bos_id": 0, "pad_id": 1,
             "splits": {"train": {"files": files, "tokens": lengths}}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    return tmp_path


def test_an_epoch_visits_disjoint_windows_and_epochs_are_reshuffled(tmp_path: Path) -> None:
    shards = _position_shards(tmp_path, [1000, 777])
    loader = TokenLoader(shards, "train", batch_size=4, seq_len=19, seed=1)
    assert len(loader.windows) == 1000 // 20 + 777 // 20  # windows never span two files
    per_epoch = len(loader.windows) // 4

    def epoch() -> torch.Tensor:  # each row: x plus y's last token = the whole window of 20
        return torch.cat([torch.cat([x, y[:, -1:]], dim=1) for x, y in
                          (loader.next_batch() for _ in range(per_epoch))])

    first, second = epoch(), epoch()
    assert len(set(first.flatten().tolist())) == first.numel()  # windows are disjoint
    assert all(row[-1] - row[0] == 19 and not row[0] < 1000 <= row[-1] for row in first.tolist())
    assert not torch.equal(first, second)  # a new order each epoch
    assert loader.epoch == 1


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


def test_eval_batches_are_a_fixed_slice_shared_by_ranks(shards: Path) -> None:
    batches = list(iter_eval_batches(shards, "val", 3, 32, max_tokens=32 * 10))
    assert sum(len(x) for x, _ in batches) == 10
    again = list(iter_eval_batches(shards, "val", 3, 32, max_tokens=32 * 10))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    split = [torch.cat([x for x, _ in iter_eval_batches(shards, "val", 3, 32, 320, r, 2)]) for r in range(2)]
    assert sorted(map(tuple, torch.cat(split).tolist())) == sorted(map(tuple, torch.cat(
        [x for x, _ in batches]).tolist()))


def test_uint32_shards_are_read(tmp_path: Path) -> None:
    tokens = np.arange(1000, dtype=np.uint32) + 70_000
    tokens.tofile(tmp_path / "t.bin")
    index = {"dtype": "uint32", "vocab_size": 80_000, "bos_id": 0, "pad_id": 1,
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
    (tmp_path / "index.json").write_text(json.dumps({"dtype": "int8", "vocab_size": 5, "splits": {}}))
    with pytest.raises(ValueError, match="dtype"):
        TokenLoader(tmp_path, "train", 2, 8, seed=0)


def test_unknown_split_and_too_little_data_are_clear_errors(shards: Path) -> None:
    with pytest.raises(ValueError, match="no split 'test'"):
        TokenLoader(shards, "test", 2, 8, seed=0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        TokenLoader(shards, "val", 4096, 255, seed=0)
