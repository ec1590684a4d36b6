"""Read a text corpus, world or real, as a stream of documents with a train/val split.

A corpus source is one of:

- a **world directory** (holds `train.jsonl` and `val.jsonl`, the world generator's output): its own
  split, read through `scalelab.world.WorldDir` (which also gives its records with the generation `logprob`);
- a **`.txt` file**: one document per block of non-blank lines (blank lines separate documents, so a
  file of paragraphs is a corpus of paragraphs; keep a document's paragraphs together by not leaving
  blank lines inside it);
- a **`.jsonl` file**: one JSON object per line with a string `text` field;
- a **`.parquet` file**: a string `text` column;
- a **directory** of such files (searched recursively, read in sorted path order);
- **`hf:<name>[:split]`**: a dataset read with the `datasets` library (split `train` by default):
  a hub name (streamed, so a large dataset is not downloaded whole), a local data folder, or a folder
  written by `Dataset.save_to_disk`; it needs `pip install 'scalelab[hub]'`.

Empty documents are skipped. A missing or empty source, a malformed record and text that is not UTF-8
raise `CorpusError` naming the file (and line) at fault. Real text has no split of its own, so
`read_split` sends an evenly spaced, deterministic fraction of documents to validation.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scalelab.errors import InputError
from scalelab.world.reader import WorldDir

HF_PREFIX = "hf:"
SPLITS = ("train", "val")
_PARQUET_BATCH = 4096


class CorpusError(InputError):
    """A corpus source is missing, empty or malformed; the message names the file and the fix."""


def _utf8_error(path: Path, where: str, err: UnicodeDecodeError) -> CorpusError:
    return CorpusError(
        f"{path}{where} is not valid UTF-8 ({err.reason} at byte {err.start}); "
        f"re-encode the file as UTF-8 (e.g. iconv -t UTF-8)"
    )


def _utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) pairs; decoding line by line lets a bad byte be reported with its line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _utf8_error(path, f" line {lineno}", err) from err


def _read_txt(path: Path) -> Iterator[str]:
    block: list[str] = []
    for _, line in _utf8_lines(path):
        if line.strip():
            block.append(line.rstrip("\r\n"))
        elif block:
            yield "\n".join(block)
            block = []
    if block:
        yield "\n".join(block)


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line, with errors that point at the line."""
    for lineno, line in _utf8_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path} line {lineno} is not valid JSON ({err.msg}); fix or remove it") from err
        if not isinstance(obj, dict):
            raise CorpusError(f"{path} line {lineno} is a JSON {type(obj).__name__}, expected an object "
                              f"with a \"text\" field")
        yield lineno, obj


def _text_field(obj: dict[str, Any], path: Path, lineno: int) -> str:
    if "text" not in obj:
        raise CorpusError(f"{path} line {lineno} has no \"text\" field (keys: {', '.join(obj) or 'none'}); "
                          f"each line must be an object like {{\"text\": \"...\"}}")
    text = obj["text"]
    if not isinstance(text, str):
        raise CorpusError(f"{path} line {lineno}: \"text\" is a {type(text).__name__}, expected a string")
    return text


def _read_jsonl(path: Path) -> Iterator[str]:
    for lineno, obj in _jsonl_records(path):
        yield _text_field(obj, path, lineno)


def _read_parquet(path: Path) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise CorpusError(f"{path} is not a readable Parquet file ({err})") from err
    names = pf.schema_arrow.names
    if "text" not in names:
        raise CorpusError(f"{path} has no \"text\" column (columns: {', '.join(names)}); "
                          f"rename the column holding the documents to \"text\"")
    field = pf.schema_arrow.field("text")
    if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
        raise CorpusError(f"{path}: column \"text\" has type {field.type}, expected a string column")
    for batch in pf.iter_batches(batch_size=_PARQUET_BATCH, columns=["text"]):
        for text in batch.column(0).to_pylist():
            if text is not None:
                yield text


_READERS = {".txt": _read_txt, ".jsonl": _read_jsonl, ".parquet": _read_parquet}
TEXT_SUFFIXES = tuple(_READERS)


def _read_file(path: Path) -> Iterator[str]:
    """Non-empty documents of one file; a file with none is an error (it is almost always a mistake)."""
    n = 0
    for text in _READERS[path.suffix](path):
        if text.strip():
            n += 1
            yield text
    if n == 0:
        raise CorpusError(f"{path} holds no documents; remove it or give it some text")


def _files_of(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix not in _READERS:
            raise CorpusError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(TEXT_SUFFIXES)}")
        return [path]
    files = sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix in _READERS and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        raise CorpusError(f"directory {path} holds no {', '.join(TEXT_SUFFIXES)} files; point at a file or "
                          f"a folder of them")
    return files


def _parse_hf(source: str) -> tuple[str, str]:
    rest = source[len(HF_PREFIX):]
    name, _, split = rest.partition(":")
    if not name:
        raise CorpusError(f"corpus source {source!r} names no dataset; write hf:<dataset name>[:split]")
    return name, split or "train"


def _read_hf(source: str) -> Iterator[str]:
    """Documents of a `datasets` dataset, opened when iteration starts."""
    name, split = _parse_hf(source)
    try:
        import datasets
    except ImportError as err:
        raise CorpusError(f"corpus source {source!r} needs the `datasets` package: pip install 'scalelab[hub]' "
                          f"(or use local .txt/.jsonl/.parquet files)") from err
    local = Path(name)
    try:
        if (local / "dataset_info.json").is_file() or (local / "dataset_dict.json").is_file():
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise CorpusError(f"{source!r}: no split {split!r} (splits: {', '.join(ds)})")
                ds = ds[split]
        else:
            # Streaming reads records as they are used instead of downloading the whole dataset first.
            ds = datasets.load_dataset(name, split=split, streaming=True)
    except CorpusError:
        raise
    except Exception as err:  # the hub raises many types (HTTP, offline mode, not found); all mean the same here
        raise CorpusError(f"could not open {source!r} with datasets ({type(err).__name__}: {err}); check the "
                          f"dataset name and split, the network (HF_HUB_OFFLINE), or use local files") from err
    columns = ds.column_names  # None for some streamed formats until a row is read
    if columns is not None:
        if "text" not in columns:
            raise CorpusError(f"{source!r} has no \"text\" column (columns: {', '.join(columns)})")
        ds = ds.select_columns(["text"])  # skip decoding the other columns
    n = 0
    for i, row in enumerate(ds):
        if "text" not in row:
            raise CorpusError(f"{source!r} row {i} has no \"text\" field (fields: {', '.join(row)})")
        text = row["text"]
        if isinstance(text, str) and text.strip():
            n += 1
            yield text
    if n == 0:
        raise CorpusError(f"{source!r} holds no documents in split {split!r}")


def _resolve(source: str | Path) -> Path:
    path = Path(source)
    if not path.exists():
        raise CorpusError(f"corpus source {str(source)!r} does not exist; give a world directory, a "
                          f".txt/.jsonl/.parquet file or folder, or hf:<dataset name>")
    return path


def _chain(paths: list[Path]) -> Iterator[str]:
    for p in paths:
        yield from _read_file(p)


def read_documents(source: str | Path) -> Iterator[str]:
    """Every document of `source` in a fixed order (a world: train then val).

    The source is checked now (a missing path fails here, not at first use); files are read lazily.
    """
    if isinstance(source, str) and source.startswith(HF_PREFIX):
        _parse_hf(source)
        return _read_hf(source)
    path = _resolve(source)
    if WorldDir.is_world(path):
        return itertools.chain.from_iterable(WorldDir(path).texts(s) for s in SPLITS)
    return _chain(_files_of(path))


def is_val_index(i: int, val_fraction: float) -> bool:
    """Document i goes to validation: evenly spaced, a `val_fraction` share, starting with document 0.

    ceil((i+1)f) > ceil(i f) holds for exactly one i in each run of 1/f documents, so any corpus with a
    document has a validation set, and the choice depends only on document order, not on a seed.
    """
    return math.ceil((i + 1) * val_fraction) > math.ceil(i * val_fraction)


def read_split(source: str | Path, split: str, val_fraction: float = 0.02) -> Iterator[str]:
    """Documents of one split: a world's own `train.jsonl`/`val.jsonl`, else every k-th document as val."""
    if split not in SPLITS:
        raise CorpusError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"val_fraction={val_fraction} must lie strictly between 0 and 1")
    if not (isinstance(source, str) and source.startswith(HF_PREFIX)):
        path = _resolve(source)
        if WorldDir.is_world(path):
            return WorldDir(path).texts(split)
    want_val = split == "val"
    docs = read_documents(source)
    return (d for i, d in enumerate(docs) if is_val_index(i, val_fraction) == want_val)


def split_documents(source: str | Path, val_fraction: float = 0.02) -> tuple[Iterator[str], Iterator[str]]:
    """(train, val) document streams of `source`; each reads the source independently."""
    return read_split(source, "train", val_fraction), read_split(source, "val", val_fraction)
