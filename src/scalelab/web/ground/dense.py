"""Dense retrieval for grounded answers: an encoder's sentence embeddings of the passages, and rank fusion with BM25.

BM25 misses a passage that answers in other words ("What does the otter eat?" against "Otters feed on fish"); an
embedding model does not need shared terms. No embedding model ships with scalelab (the machines it is built on reach
PyPI only, no model hub), so the dense retriever is optional: `--embedder` names an encoder, a local folder as
`save_pretrained` writes it (a downloaded `sentence-transformers/all-MiniLM-L6-v2` is one) or, with network access,
a hub name; either is handed to `transformers` as given. A passage's embedding is the encoder's last hidden states,
mean-pooled over its tokens (CLS when a sentence-transformers folder's pooling config asks for it), L2-normalised,
so a dot product is the cosine. The embeddings are computed once, when the index is built, and kept in memory.

The two rankings are fused with reciprocal rank fusion (Cormack et al., 2009): score(p) = Σ 1 / (60 + rank),
summed over the retrievers that rank p. It needs no calibration between BM25 scores and cosines, which live on
unrelated scales, and a passage both rank well comes first.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from scalelab.errors import InputError, MissingInput

RRF_K = 60  # the constant of Cormack et al.; it damps the weight of the very first ranks
T = TypeVar("T", bound=Hashable)

_FIX = ("pass --embedder a local encoder folder (config.json, weights and tokenizer as save_pretrained writes them, "
        "e.g. a downloaded sentence-transformers/all-MiniLM-L6-v2), or a hub name where the hub can be reached")
# sentence-transformers modules whose effect this loader reproduces; any other (Dense, ...) changes the vectors
_KNOWN_MODULES = ("Transformer", "Pooling", "Normalize")


def reciprocal_rank_fusion(rankings: Sequence[Sequence[T]], k: int = RRF_K) -> list[tuple[T, float]]:
    """Every item of any ranking (best first), scored Σ 1/(k + rank) with ranks from 1, best fused score first;
    equal scores keep the order of first appearance (the first ranking's order wins a tie)."""
    scores: dict[T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])  # sorted() is stable: ties stay in insertion order


def _reason(err: Exception) -> str:
    """The first line of a loader's message (transformers' run to several lines), short enough for one line."""
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return line if len(line) <= 160 else line[:159] + "…"


def _pooling(source: str) -> str:
    """"mean" or "cls": what a sentence-transformers folder's Pooling module does (mean for a plain encoder)."""
    from transformers.utils import cached_file

    def read(name: str) -> Any:
        path = cached_file(source, name, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
        return json.loads(Path(path).read_text()) if path else None

    modules = read("modules.json") or []
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    extra = [k for k in kinds if k not in _KNOWN_MODULES]
    if extra:
        raise InputError(f"embedder {source}: its sentence-transformers module {extra[0]} changes the embeddings and "
                         f"is not supported (only {', '.join(_KNOWN_MODULES)}); {_FIX}")
    pool = next((m for m, k in zip(modules, kinds, strict=True) if k == "Pooling"), None)
    config = read(f"{pool['path']}/config.json") if pool else None
    if not config or config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    mode = next((k for k, v in config.items() if k.startswith("pooling_mode") and v), "none")
    raise InputError(f"embedder {source}: pooling {mode} is not supported (mean or CLS only); {_FIX}")


class Embedder:
    """Texts → unit vectors with a `transformers` encoder (see the module docstring), on the CPU, in batches."""

    def __init__(self, name: str, model: Any, tokenizer: Any, pooling: str = "mean", batch_size: int = 32,
                 max_length: int = 256) -> None:
        self.name = name
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = min(max_length, getattr(model.config, "max_position_embeddings", max_length))

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = self.model(**enc).last_hidden_state.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # the mean over real tokens: padding is masked out, so a text's vector does not depend on its batch
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 rows of unit norm. Texts are batched by length (less padding to compute);
        `progress` shows a bar when there are more than a few batches."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        starts = range(0, len(order), self.batch_size)
        for s in tqdm(starts, desc=f"embedding with {self.name}", unit="batch",
                      disable=not progress or len(starts) <= 4):
            ids = order[s:s + self.batch_size]
            out[ids] = self._batch([texts[i] for i in ids])
        return out


def load_embedder(spec: str | Path, batch_size: int = 32) -> Embedder:
    """The encoder `spec` names (a folder, or a hub name), or a one-line user error naming it and the fix."""
    from transformers import AutoModel, AutoTokenizer

    source = str(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
    except (OSError, ValueError, KeyError) as err:  # transformers' kinds for "no such model" and "not a model"
        if Path(source).expanduser().exists():
            raise InputError(f"embedder {source} is not an encoder folder transformers can load "
                             f"({_reason(err)}); {_FIX}") from err
        raise MissingInput(f"embedder {source} is neither a folder here nor a model the hub could serve "
                           f"({_reason(err)}); {_FIX}") from err
    return Embedder(source, model.float(), tokenizer, _pooling(source), batch_size)


class DenseIndex:
    """The unit embeddings of a list of texts, computed once; a search is one matrix-vector product."""

    def __init__(self, texts: Sequence[str], embedder: Embedder, progress: bool = True) -> None:
        self.embedder = embedder
        self.vectors = embedder.encode(texts, progress=progress)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(text index, cosine) of the `k` texts nearest the query, nearest first."""
        k = min(k, len(self.vectors))
        if k < 1:
            return []
        scores = self.vectors @ self.embedder.encode([query])[0]
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]
