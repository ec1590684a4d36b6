"""Passage retrieval for grounded answers: BM25 (the `bm25s` library) over sentence-window passages, fused with a
dense retriever's ranking when an embedding model is given (`dense`; BM25 alone otherwise, the default).

Terms are lower-cased, stripped of English stop words (question words included: `bm25s`'s extended list) and
Snowball-stemmed, so "Where does X live?" meets "X lives in Y." The index also keeps each term's passage
frequency, which the answerer uses to find what a question is *about* (its rare terms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

from scalelab.errors import InputError
from scalelab.web.ground.dense import DenseIndex, Embedder, reciprocal_rank_fusion
from scalelab.web.ground.docs import Document, Passage, split_passages

FUSION_DEPTH = 100  # passages each retriever ranks before fusion: a passage both place low can still rise


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    rank: int


class PassageIndex:
    """BM25 over the passages of `docs`, and their embeddings when an `embedder` is given (built once; searching is
    read-only and safe from several threads)."""

    def __init__(self, docs: list[Document], max_sentences: int = 3, embedder: Embedder | None = None) -> None:
        if not docs:
            raise InputError("no documents to index: the folder holds no non-empty .txt, .md, .jsonl or .html file")
        t0 = time.perf_counter()
        self.docs = docs
        self.passages = split_passages(docs, max_sentences)
        self._by_id = {d.id: i for i, d in enumerate(docs)}
        self._stemmer = Stemmer.Stemmer("english")
        tokens = bm25s.tokenize([self.text(p) for p in self.passages], stopwords=STOPWORDS_EN_PLUS,
                                stemmer=self._stemmer, show_progress=False)
        self._bm25 = bm25s.BM25()
        self._bm25.index(tokens, show_progress=False)
        self._vocab: dict[str, int] = dict(tokens.vocab)
        counts = np.zeros(len(self._vocab), dtype=np.int64)
        for ids in tokens.ids:
            counts[np.unique(np.asarray(ids, dtype=np.int64))] += 1
        self._df = counts
        self.dense = DenseIndex([self.text(p) for p in self.passages], embedder) if embedder is not None else None
        self.build_seconds = time.perf_counter() - t0

    def text(self, p: Passage) -> str:
        return self.docs[p.doc].text[p.start:p.end]

    def position(self, doc_id: str) -> int:
        """A document's index in `docs`; an unknown id is an InputError naming it."""
        if doc_id not in self._by_id:
            raise InputError(f"no document {doc_id!r} in the index; document ids come from /api/ask citations or "
                             "/api/documents")
        return self._by_id[doc_id]

    def document(self, doc_id: str) -> Document:
        return self.docs[self.position(doc_id)]

    def terms(self, text: str) -> list[str]:
        """The index's terms of `text` (stemmed, stop words out), in order."""
        out = bm25s.tokenize([text], stopwords=STOPWORDS_EN_PLUS, stemmer=self._stemmer, return_ids=False,
                             show_progress=False)
        return list(out[0])

    def df(self, term: str) -> int:
        """How many passages contain the (stemmed) term; 0 for a term the documents never use."""
        i = self._vocab.get(term)
        return 0 if i is None else int(self._df[i])

    @property
    def retriever(self) -> str:
        """What `search` ranks with, as answers and the evaluation report it."""
        if self.dense is None:
            return "bm25"
        return f"bm25 + dense ({self.dense.embedder.name}), reciprocal rank fusion"

    def search(self, question: str, k: int = 5) -> list[Hit]:
        """The `k` best passages for the question: BM25's, or with an embedder BM25's and the dense ranking fused
        (score: the fused reciprocal-rank score)."""
        if self.dense is None:
            return self.bm25(question, k)
        if k < 1:
            return []
        depth = max(k, FUSION_DEPTH)
        fused = reciprocal_rank_fusion([[h.passage for h in self.bm25(question, depth)],
                                        [h.passage for h in self.dense_search(question, depth)]])
        return [Hit(p, score, r) for r, (p, score) in enumerate(fused[:k])]

    def dense_search(self, question: str, k: int = 5) -> list[Hit]:
        """The `k` passages whose embeddings are nearest the question's (score: cosine); needs an embedder."""
        if self.dense is None:
            raise InputError("dense search needs an embedding model: build the index with an embedder (--embedder)")
        return [Hit(self.passages[i], s, r) for r, (i, s) in enumerate(self.dense.search(question, k))]

    def bm25(self, question: str, k: int = 5) -> list[Hit]:
        """BM25's `k` best passages for the question (only those sharing a term with it)."""
        terms = [t for t in self.terms(question) if t in self._vocab]
        if not terms or k < 1:
            return []
        idx, scores = self._bm25.retrieve([terms], k=min(k, len(self.passages)), show_progress=False, n_threads=1)
        return [Hit(self.passages[int(i)], float(s), r) for r, (i, s) in enumerate(zip(idx[0], scores[0],
                                                                                       strict=True)) if s > 0]
