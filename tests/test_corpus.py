"""Corpus readers: world directories, .txt/.jsonl/.parquet files and folders, splits, and their errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalelab.data.corpus import (
    CorpusError,
    is_val_index,
    read_documents,
    read_split,
    split_documents,
)
from scalelab.errors import MissingInput
from scalelab.world.reader import WorldDir, WorldFormatError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def world_row(i: int, text: str) -> dict:
    return {"id": i, "genre": "story", "text": text, "logprob": -1.5 * (i + 1), "spans": [[0, 3, "person"]]}


@pytest.fixture
def world(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "train.jsonl", [world_row(i, f"Ælfric story {i}.") for i in range(5)])
    write_jsonl(tmp_path / "val.jsonl", [world_row(i, f"Mireille story {i}.") for i in range(5, 7)])
    return tmp_path


def test_world_dir_uses_its_own_split(world: Path) -> None:
    train = [f"Ælfric story {i}." for i in range(5)]
    val = ["Mireille story 5.", "Mireille story 6."]
    assert list(read_split(world, "train")) == train
    assert list(read_split(str(world), "val")) == val
    assert list(read_documents(world)) == train + val
    tr, va = split_documents(world)
    assert (list(tr), list(va)) == (train, val)


def test_world_records_carry_logprob(world: Path) -> None:
    recs = list(WorldDir(world).records("val"))
    assert [r["logprob"] for r in recs] == [-9.0, -10.5]
    write_jsonl(world / "val.jsonl", [{"id": 0, "text": "no logprob here"}])
    with pytest.raises(WorldFormatError, match=r"val\.jsonl line 1 has no numeric \"logprob\""):
        list(WorldDir(world).records("val"))
    with pytest.raises(MissingInput, match="build the world first"):
        list(WorldDir(world / "train.jsonl").records("train"))


def test_txt_documents_are_blank_line_separated_blocks(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes("First doc,\r\nline two.\r\n\r\n\n  \nSecond — “doc”.\n\nThird\n".encode())
    assert list(read_documents(p)) == ["First doc,\nline two.", "Second — “doc”.", "Third"]


def test_jsonl_reads_text_and_skips_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "one", "x": 1}\n\n{"text": "two 🐉"}\n{"text": ""}\n', encoding="utf-8")
    assert list(read_documents(p)) == ["one", "two 🐉"]


def test_jsonl_errors_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "ok"}\n{"body": "no text"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"d\.jsonl line 2 has no \"text\" field \(keys: body\)"):
        list(read_documents(p))
    p.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"d\.jsonl line 2 is not valid JSON"):
        list(read_documents(p))
    p.write_text('{"text": 7}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"line 1: \"text\" is a int"):
        list(read_documents(p))


def test_parquet_text_column(tmp_path: Path) -> None:
    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["alpha", None, "beta ✓"], "n": [1, 2, 3]}), p)
    assert list(read_documents(p)) == ["alpha", "beta ✓"]
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"content": ["x"]}), bad)
    with pytest.raises(CorpusError, match=r"bad\.parquet has no \"text\" column \(columns: content\)"):
        list(read_documents(bad))


def test_directory_of_files_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("from txt\n", encoding="utf-8")
    write_jsonl(tmp_path / "a.jsonl", [{"text": "from jsonl"}])
    pq.write_table(pa.table({"text": ["from parquet"]}), tmp_path / "c.parquet")
    (tmp_path / ".hidden.txt").write_text("hidden\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored\n", encoding="utf-8")
    assert list(read_documents(tmp_path)) == ["from jsonl", "from txt", "from parquet"]


def test_missing_empty_and_unsupported_sources(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"nope\.txt.*does not exist"):
        read_documents(tmp_path / "nope.txt")  # fails at the call, before iteration
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"empty\.txt holds no documents"):
        list(read_documents(empty))
    (tmp_path / "sub").mkdir()
    with pytest.raises(CorpusError, match=r"holds no \.txt, \.jsonl, \.parquet files"):
        read_documents(tmp_path / "sub")
    (tmp_path / "x.csv").write_text("text\nhi\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"unsupported file type '\.csv'"):
        read_documents(tmp_path / "x.csv")


@pytest.mark.parametrize("name,data", [
    ("latin1.txt", "good line\n\ncaf\xe9 au lait\n".encode("latin-1")),
    ("latin1.jsonl", '{"text": "ok"}\n{"text": "caf\xe9"}\n'.encode("latin-1")),
])
def test_non_utf8_names_file_and_line(tmp_path: Path, name: str, data: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    line = 3 if name.endswith(".txt") else 2
    with pytest.raises(CorpusError, match=rf"{name} line {line} is not valid UTF-8"):
        list(read_documents(p))


def test_real_text_split_is_deterministic_disjoint_and_sized(tmp_path: Path) -> None:
    docs = [{"text": f"doc {i}"} for i in range(230)]
    src = write_jsonl(tmp_path / "d.jsonl", docs)
    train = list(read_split(src, "train", val_fraction=0.1))
    val = list(read_split(src, "val", val_fraction=0.1))
    assert len(val) == math.ceil(230 * 0.1)
    assert sorted(train + val) == sorted(d["text"] for d in docs)
    assert not set(train) & set(val)
    assert val == list(read_split(src, "val", val_fraction=0.1))
    # evenly spaced: one val document in each run of 10
    assert val[:3] == ["doc 0", "doc 10", "doc 20"]


def test_tiny_corpus_still_gets_a_val_document() -> None:
    assert [i for i in range(3) if is_val_index(i, 0.02)] == [0]


def test_bad_split_arguments(world: Path) -> None:
    with pytest.raises(CorpusError, match="unknown split 'test'"):
        read_split(world, "test")
    with pytest.raises(CorpusError, match=r"val_fraction=1\.0"):
        read_split(world, "val", val_fraction=1.0)
