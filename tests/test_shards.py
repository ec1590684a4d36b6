"""Shard packing: the shards decode back to the documents, the index adds up, the dtype follows the vocab."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from scalelab.chat_format import render_chat
from scalelab.data.shards import INDEX, ShardError, pack_shards, token_dtype
from scalelab.data.tokenizer import train_tokenizer

TRAIN = [
    "Ælfric of Brønholm traded 12 silver tools with Mireille at dawn.",
    render_chat([{"role": "user", "content": "Where is Quinby?"}, {"role": "assistant", "content": "North."}]),
    "Question: what is 347 plus 58? Answer: 405.",
    "🐉 The creature Vøllik sleeps in the caves north of Quinby.\nIt fears fire.",
] * 15
VAL = ["Mireille (born 1893) is a weaver.", "Answer: 7."]


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerFast:
    return train_tokenizer(TRAIN, vocab_size=300, out_dir=tmp_path_factory.mktemp("tok"))


def read_stream(out: Path, index: dict, split: str) -> np.ndarray:
    dtype = np.dtype(index["dtype"])
    return np.concatenate([np.fromfile(out / f, dtype=dtype) for f in index["splits"][split]["files"]])


def split_at_bos(stream: np.ndarray, bos: int) -> list[list[int]]:
    starts = np.flatnonzero(stream == bos)
    assert starts[0] == 0
    return [stream[a + 1 : b].tolist() for a, b in zip(starts, [*starts[1:], len(stream)], strict=True)]


def test_shards_decode_back_to_the_documents(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    result = pack_shards(tok, TRAIN, iter(VAL), tmp_path, shard_tokens=97)
    index = json.loads((tmp_path / INDEX).read_text())
    assert {k: v for k, v in result.items() if k != "doc_tokens"} == index
    assert index["dtype"] == "uint16" and index["vocab_size"] == len(tok) == 300
    assert index["bos_id"] == tok.bos_token_id and index["pad_id"] == tok.pad_token_id
    for split, docs in (("train", TRAIN), ("val", VAL)):
        stream = read_stream(tmp_path, index, split)
        decoded = [tok.decode(ids) for ids in split_at_bos(stream, index["bos_id"])]
        assert decoded == docs


def test_index_adds_up(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    result = pack_shards(tok, TRAIN, VAL, tmp_path, shard_tokens=97)
    on_disk = json.loads((tmp_path / INDEX).read_text())
    train = on_disk["splits"]["train"]
    assert len(train["files"]) > 1  # the small shard size forces several files
    assert all(n == 97 for n in train["tokens"][:-1]) and 0 < train["tokens"][-1] <= 97
    for split, docs in (("train", TRAIN), ("val", VAL)):
        info = on_disk["splits"][split]
        sizes = [(tmp_path / f).stat().st_size // 2 for f in info["files"]]
        assert sizes == info["tokens"]
        assert info["docs"] == len(docs) == len(result["doc_tokens"][split])
        expected = [len(tok.encode(d, add_special_tokens=False)) + 1 for d in docs]
        assert result["doc_tokens"][split] == expected
        assert sum(info["tokens"]) == sum(expected)


def test_repacking_removes_stale_shards(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    pack_shards(tok, TRAIN, VAL, tmp_path, shard_tokens=50)
    index = pack_shards(tok, TRAIN, VAL, tmp_path, shard_tokens=10_000)
    assert index["splits"]["train"]["files"] == ["train_00000.bin"]
    assert sorted(p.name for p in tmp_path.glob("*.bin")) == ["train_00000.bin", "val_00000.bin"]


def test_failed_pack_leaves_no_index(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    pack_shards(tok, TRAIN, VAL, tmp_path)
    with pytest.raises(ShardError, match="the val split has no documents"):
        pack_shards(tok, TRAIN, [], tmp_path)
    assert not (tmp_path / INDEX).exists()


def test_dtype_boundary() -> None:
    assert token_dtype(300) == np.uint16
    assert token_dtype(2**16) == np.uint16  # ids 0..65535 fit
    assert token_dtype(2**16 + 1) == np.uint32


def big_vocab_tokenizer(n_words: int) -> PreTrainedTokenizerFast:
    """A word-level tokenizer with ids past 65535: a vocab that large via BPE would take far too long here."""
    vocab = {"<|bos|>": 0, "<|pad|>": 1, "[UNK]": 2} | {f"w{i}": i + 3 for i in range(n_words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|bos|>", pad_token="<|pad|>",
                                   unk_token="[UNK]")


def test_large_vocab_packs_as_uint32(tmp_path: Path) -> None:
    tok = big_vocab_tokenizer(70_000)
    docs = ["w69999 w5 w65533", "w0"]  # ids 70002, 8, 65536, 3
    index = pack_shards(tok, docs, ["w65534"], tmp_path)
    assert index["dtype"] == "uint32"
    assert read_stream(tmp_path, index, "train").tolist() == [0, 70002, 8, 65536, 0, 3]
    assert read_stream(tmp_path, index, "val").tolist() == [0, 65537]


def test_bad_arguments(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    with pytest.raises(ShardError, match="shard_tokens=0"):
        pack_shards(tok, TRAIN, VAL, tmp_path, shard_tokens=0)
    with pytest.raises(ShardError, match="train split has no documents"):
        pack_shards(tok, [], VAL, tmp_path)
