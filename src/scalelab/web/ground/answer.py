"""Grounded answers: retrieve passages, pick the sentence that answers the question, cite it.

The ladder's chat models are tiny (a few hundred thousand parameters, contexts of 256 tokens, never trained to
read passages), so asking one to *write* an answer from pasted passages gives fluent text unrelated to them.
So the answer is *extractive*: the candidates are the sentences of the retrieved passages that mention what the
question is about (its names and its rarest term), and each is ranked by

1. how many of the question's other terms it shares (stemmed: "Where does X live?" shares *live* with "X lives in
   Y."), then
2. the model's judgement, pointwise mutual information with the question,
   PMI(s) = log p(s | chat prompt with the question) − log p(s | chat prompt with an empty question):
   post-training taught the chat models the shape of an answer ("What food does the X eat?" → "The X feeds on
   Y."), which PMI reads even when the words differ.

The answer is the best sentence, verbatim, with its citation (document, passage, character span), so it can only
say what a document says. Without a model, ties keep the retriever's passage order.

A question is *not supported* — and the answer says so — when a name in it (a capitalised word after the first)
never occurs in the documents, when no retrieved sentence mentions its rarest term, or when the best sentence
shares no other term with the question and the model does not vouch for it (PMI below `min_pmi`; always, without
a model). The numbers behind these choices are in BENCHMARKS.md ("Web app").
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from scalelab.evals.scoring import choice_logprobs
from scalelab.model.lm import LM
from scalelab.web.ground.docs import sentence_spans
from scalelab.web.ground.index import Hit, PassageIndex

NOT_SUPPORTED = "The documents do not say."


@dataclass(frozen=True)
class Citation:
    doc_id: str
    title: str
    passage: int  # the passage's number within its document
    start: int  # the cited sentence's character span in the document
    end: int
    passage_start: int
    passage_end: int
    text: str


@dataclass
class Answer:
    question: str
    answer: str
    supported: bool
    citations: list[Citation]
    reason: str
    scorer: str
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    retriever: str = "bm25"  # what ranked `retrieved` (PassageIndex.retriever)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Candidate:
    hit: Hit
    start: int
    end: int
    text: str
    overlap: int  # question terms it shares besides the subject's


class GroundedAnswerer:
    """Answers questions from a `PassageIndex`, scoring candidate sentences with `lm` (None: lexical)."""

    def __init__(self, index: PassageIndex, k: int = 5, min_pmi: float = 2.0, overlap: bool = True) -> None:
        self.index = index
        self.k = k
        self.min_pmi = min_pmi
        self.overlap = overlap  # False: the model alone ranks (measured in BENCHMARKS.md)

    def _subject(self, question: str) -> tuple[set[str], str | None]:
        """The terms a supporting sentence must contain, or (empty, why not) when the documents cannot answer."""
        words = question.split()
        names = [w.strip("?!.,;:'\"()") for w in words[1:] if w[:1].isupper()]
        key: set[str] = set()
        for name in names:
            stems = self.index.terms(name)
            missing = [s for s in stems if self.index.df(s) == 0]
            if missing:
                return set(), f"the documents never mention {name!r}"
            key.update(stems)
        known = [t for t in self.index.terms(question) if self.index.df(t) > 0]
        if not known:
            return set(), "no word of the question occurs in the documents"
        key.add(min(known, key=self.index.df))
        return key, None

    def _candidates(self, hits: list[Hit], key: set[str], question: str) -> list[_Candidate]:
        """Sentences holding every key term and something more (a title line states nothing), deduplicated."""
        asked = set(self.index.terms(question)) - key
        out, seen = [], set()
        for hit in hits:
            doc = self.index.docs[hit.passage.doc]
            for s, e in sentence_spans(doc.text[hit.passage.start:hit.passage.end]):
                start, end = hit.passage.start + s, hit.passage.start + e
                text = doc.text[start:end]
                terms = set(self.index.terms(text))
                if key <= terms and terms - key and text not in seen:
                    seen.add(text)
                    out.append(_Candidate(hit, start, end, text, len(asked & terms) if self.overlap else 0))
        return out

    def _pmi(self, lm: LM, question: str, cands: list[_Candidate]) -> list[float]:
        prompts = [lm.chat_text([{"role": "user", "content": q}]) for q in (question, "")]
        texts = [[c.text for c in cands]] * 2  # the reply starts right after the assistant marker, as in training
        cond, base = choice_logprobs(lm, prompts, texts, batch_size=32)
        return [a - b for a, b in zip(cond, base, strict=True)]

    def answer(self, question: str, lm: LM | None = None) -> Answer:
        t0 = time.perf_counter()
        hits = self.index.search(question, self.k)
        retrieved = [{"doc_id": self.index.docs[h.passage.doc].id, "passage": h.passage.index,
                      "start": h.passage.start, "end": h.passage.end, "score": round(h.score, 4),
                      "text": self.index.text(h.passage)} for h in hits]
        scorer = "term overlap, then model PMI" if lm is not None else "term overlap, then BM25 order"

        def result(text: str, supported: bool, reason: str, cites: list[Citation]) -> Answer:
            return Answer(question, text, supported, cites, reason, scorer, retrieved, time.perf_counter() - t0,
                          self.index.retriever)

        key, why_not = self._subject(question)
        if why_not:
            return result(NOT_SUPPORTED, False, why_not, [])
        cands = self._candidates(hits, key, question)
        if not cands:
            return result(NOT_SUPPORTED, False, "no retrieved passage mentions what the question is about", [])
        pmi = self._pmi(lm, question, cands) if lm is not None else [0.0] * len(cands)
        i = max(range(len(cands)), key=lambda j: (cands[j].overlap, pmi[j], -j))
        best = cands[i]
        why = f"shares {best.overlap} of the question's terms" + (f"; PMI {pmi[i]:.2f} nats" if lm is not None else "")
        if best.overlap == 0 and (lm is None or pmi[i] < self.min_pmi):
            return result(NOT_SUPPORTED, False, f"no sentence on the subject answers it ({why}, under "
                                                f"{self.min_pmi})" if lm is not None else
                          "no sentence on the subject shares the question's other terms", [])
        doc = self.index.docs[best.hit.passage.doc]
        cite = Citation(doc.id, doc.title, best.hit.passage.index, best.start, best.end, best.hit.passage.start,
                        best.hit.passage.end, best.text)
        return result(best.text, True, f"{why}; best of {len(cands)} sentences", [cite])
