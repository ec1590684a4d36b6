"""Text for interp: documents packed into fixed-length token rows, with each token's world concept.

Rows are packed the way pretraining packs them (each document starts with the tokenizer's BOS when it
has one, documents are concatenated and cut into `seq_len` rows), so activations come from the
distribution the model was trained on. When records carry the world's character `spans`
([start, end, concept]), every token gets the concept of the span it overlaps most (offsets from the
tokenizer's `return_offsets_mapping`); tokens outside any span, and BOS, get -1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from scalelab.errors import InputError, MissingInput


def read_records(source: Path | str) -> Iterator[dict[str, Any]]:
    """Records {"text", optional "spans"} from a world .jsonl, a .txt file, or a directory of them."""
    path = Path(source)
    if path.is_dir():
        files = sorted([*path.glob("*.jsonl"), *path.glob("*.txt")])
        if (path / "train.jsonl").is_file():  # a world directory: its training text
            files = [path / "train.jsonl"]
    elif path.is_file():
        files = [path]
    else:
        raise MissingInput(f"text source {path} does not exist; pass a world directory, .jsonl or .txt")
    if not files:
        raise MissingInput(f"{path} holds no .jsonl or .txt files")
    for f in files:
        with open(f, encoding="utf-8") as fh:
            if f.suffix == ".jsonl":
                for line in fh:
                    if line.strip():
                        rec = json.loads(line)
                        if "text" not in rec:
                            raise InputError(f"{f}: a record has no 'text' field")
                        yield rec
            else:
                for para in fh.read().split("\n\n"):
                    if para.strip():
                        yield {"text": para}


def token_concepts(offsets: list[tuple[int, int]], spans: list[list[Any]], concept_ids: dict[str, int]) -> list[int]:
    """Per token, the id of the span concept overlapping its characters most (-1: none)."""
    labels = []
    j = 0
    spans = sorted(spans, key=lambda s: s[0])
    for start, end in offsets:
        if end <= start:
            labels.append(-1)
            continue
        while j < len(spans) and spans[j][1] <= start:
            j += 1
        best, best_overlap = -1, 0
        k = j
        while k < len(spans) and spans[k][0] < end:
            overlap = min(end, spans[k][1]) - max(start, spans[k][0])
            if overlap > best_overlap:
                best, best_overlap = concept_ids.get(spans[k][2], -1), overlap
            k += 1
        labels.append(best)
    return labels


def _strip_leading_space(offsets: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Offsets without a token's leading whitespace: byte-level BPE glues the space before a word onto it
    (" Daen"), and that space belongs to the preceding template span, which would otherwise tie with the word."""
    out = []
    for start, end in offsets:
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        out.append((start + lead, end) if lead < len(piece) else (start, end))
    return out


def rows_for_tokens(tokens: int, seq_len: int, spare: float = 0.02) -> int:
    """Rows of `seq_len` tokens that give `tokens` activation rows (position 0 of each row is not cached), with
    `spare` more for the attention-sink rows the cache drops (`cache.massive_rows`: 7 of 40,005 on SmolLM2's
    layer 15, enough to leave the cache short of an exact count)."""
    return -(-int(tokens * (1 + spare)) // (seq_len - 1))


def pack_rows(tokenizer: Any, records: Iterable[dict[str, Any]], seq_len: int, n_rows: int,
              concepts: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, labels), each (n_rows, seq_len) int64; fewer rows if the records run out."""
    concept_ids = {c: i for i, c in enumerate(concepts or [])}
    ids: list[int] = []
    labels: list[int] = []
    need = n_rows * seq_len
    bos = tokenizer.bos_token_id
    for rec in records:
        enc = tokenizer(rec["text"], add_special_tokens=False, return_offsets_mapping=concepts is not None)
        tok = list(enc["input_ids"])
        lab = (token_concepts(_strip_leading_space(enc["offset_mapping"], rec["text"]), rec.get("spans") or [],
                              concept_ids) if concepts is not None else [-1] * len(tok))
        if bos is not None:
            tok, lab = [bos, *tok], [-1, *lab]
        ids += tok
        labels += lab
        if len(ids) >= need:
            break
    rows = len(ids) // seq_len
    if rows == 0:
        raise InputError(f"the text gave {len(ids)} tokens, fewer than one row of {seq_len}")
    rows = min(rows, n_rows)
    return (torch.tensor(ids[:rows * seq_len]).view(rows, seq_len),
            torch.tensor(labels[:rows * seq_len]).view(rows, seq_len))


def batched(rows: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for s in range(0, len(rows), batch_size):
        yield rows[s:s + batch_size]
