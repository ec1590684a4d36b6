"""Grounded answers measured on the world, where every answer is known.

Questions are the world's chat questions (`FACT_QUESTIONS`: "Where does X live?") about sampled entities, in
three groups:

- *stated*: some indexed document has a sentence stating the fact (it names the subject and the value, and a
  `relation:<fact>` concept span lies in it) — the documents can answer;
- *unstated*: the subject is in the documents but no sentence states this fact — a correct system abstains;
- *unknown*: the subject does not exist (the world's held-out invented names) — a correct system abstains.

Per system (closed book: the model's own greedy chat reply; retrieval with the model judging sentences;
retrieval with the lexical baseline) it reports answer accuracy (the gold value appears in the answer as a
whole phrase), citation precision (the cited sentence states the gold fact), abstention rates, retrieval
recall@k (a stating sentence is inside the top-k passages; with an embedder, for BM25, dense and their fusion) and
per-question latency.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scalelab.model.lm import LM
from scalelab.web.ground.answer import GroundedAnswerer
from scalelab.web.ground.docs import Document, sentence_spans
from scalelab.web.ground.index import Hit, PassageIndex
from scalelab.world.entities import World
from scalelab.world.templates import FACT_QUESTIONS


@dataclass(frozen=True)
class Question:
    text: str
    subject: str
    fact: str
    gold: str | None  # None for an entity that does not exist
    group: str  # stated | unstated | unknown


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, flags=re.IGNORECASE) is not None


def states(doc: Document, start: int, end: int, subject: str, fact: str, value: str) -> bool:
    """Does doc.text[start:end] state subject's `fact` = value (names both, and carries the relation's span)?"""
    text = doc.text[start:end]
    return (_mentions(text, subject) and _mentions(text, value)
            and any(c == f"relation:{fact}" and a < end and b > start for a, b, c in doc.spans))


def _stating_sentences(index: PassageIndex, subject: str, fact: str, value: str) -> set[tuple[int, int]]:
    """(document index, sentence start) of every indexed sentence stating the fact."""
    out = set()
    for d, doc in enumerate(index.docs):
        if subject not in doc.text or value not in doc.text:
            continue
        out.update((d, s) for s, e in sentence_spans(doc.text) if states(doc, s, e, subject, fact, value))
    return out


def make_questions(world: World, index: PassageIndex, n: int, seed: int = 0) -> list[tuple[Question, set]]:
    """Up to n questions per group (stated, unstated, unknown), each with its stating sentences."""
    rng = random.Random(seed)
    pool = [(e, fact) for kind, facts in FACT_QUESTIONS.items() for e in world.entities[kind] for fact in facts]
    rng.shuffle(pool)
    groups: dict[str, list[tuple[Question, set]]] = {"stated": [], "unstated": []}
    for entity, fact in pool:
        if all(len(g) >= n for g in groups.values()):
            break
        opener, tail = FACT_QUESTIONS[entity.kind][fact]
        value = entity.facts[fact]
        where = _stating_sentences(index, entity.name, fact, value)
        group = "stated" if where else "unstated"
        if group == "unstated" and not any(entity.name in d.text for d in index.docs):
            continue  # a subject the documents never name is the unknown group's business
        if len(groups[group]) < n:
            groups[group].append((Question(opener + entity.name + tail, entity.name, fact, value, group), where))
    unknown = []
    for kind in ("person", "town"):
        for name in world.unknown.get("eval", {}).get(kind, []):
            fact = rng.choice(sorted(FACT_QUESTIONS[kind]))
            opener, tail = FACT_QUESTIONS[kind][fact]
            unknown.append((Question(opener + name + tail, name, fact, None, "unknown"), set()))
    rng.shuffle(unknown)
    return groups["stated"] + groups["unstated"] + unknown[:n]


def _p(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100)[int(q) - 1], 4) if len(values) > 1 else round(values[0], 4)


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def evaluate(index: PassageIndex, world: World, lm: LM | None, *, n: int = 100, k: int = 5, seed: int = 0,
             min_pmi: float = 2.0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every metric of the module docstring, for the closed-book model and three ways of picking the sentence:
    term overlap alone, the model's PMI alone, and overlap then PMI (the app's)."""
    questions = make_questions(world, index, n, seed)
    systems: dict[str, tuple[LM | None, bool]] = {"retrieval + term overlap (no model)": (None, True)}
    if lm is not None:
        systems = {"retrieval + overlap, then model PMI": (lm, True), "retrieval + model PMI alone": (lm, False),
                   **systems}
    out: dict[str, Any] = {"questions": {g: sum(q.group == g for q, _ in questions)
                                         for g in ("stated", "unstated", "unknown")},
                           "passages": len(index.passages), "documents": len(index.docs), "k": k, "systems": {}}
    stated = [(q, where) for q, where in questions if q.group == "stated"]
    out["retriever"] = index.retriever
    out["recall_at_k"] = _recall(index.search, stated, k)
    if index.dense is not None:  # each retriever alone beside their fusion, which the answers use
        out["recall_at_k_by_retriever"] = {"bm25": _recall(index.bm25, stated, k),
                                           "dense": _recall(index.dense_search, stated, k),
                                           "fused": out["recall_at_k"]}
    for name, (model, overlap) in systems.items():
        answerer = GroundedAnswerer(index, k=k, min_pmi=min_pmi, overlap=overlap)
        rows = []
        for q, where in questions:
            a = answerer.answer(q.text, model)
            cite = a.citations[0] if a.citations else None
            rows.append({"group": q.group, "answered": a.supported, "seconds": a.seconds,
                         "correct": a.supported and q.gold is not None and _mentions(a.answer, q.gold),
                         "cited_ok": bool(cite and (index.position(cite.doc_id), cite.start) in where)})
        out["systems"][name] = _summarise(rows)
        if log:
            log(f"  {name}: {out['systems'][name]}")
    if lm is not None:
        out["systems"]["closed book (model's own reply)"] = _closed_book(lm, [q for q, _ in questions])
    return out


def _recall(search: Callable[[str, int], list[Hit]], stated: list[tuple[Question, set]], k: int) -> float | None:
    """The share of stated questions with a stating sentence inside one of `search`'s top-k passages."""
    return _rate([any(d == h.passage.doc and h.passage.start <= s < h.passage.end
                      for h in search(q.text, k) for d, s in where) for q, where in stated])


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {g: [r for r in rows if r["group"] == g] for g in ("stated", "unstated", "unknown")}
    answered = [r for r in rows if r["answered"]]
    return {"accuracy_stated": _rate([r["correct"] for r in by["stated"]]),
            "abstain_stated": _rate([not r["answered"] for r in by["stated"]]),
            "abstain_unstated": _rate([not r["answered"] for r in by["unstated"]]),
            "abstain_unknown": _rate([not r["answered"] for r in by["unknown"]]),
            "citation_precision": _rate([r["cited_ok"] for r in answered]),
            "latency_p50_s": _p([r["seconds"] for r in rows], 50),
            "latency_p95_s": _p([r["seconds"] for r in rows], 95)}


def _closed_book(lm: LM, questions: list[Question], max_new_tokens: int = 32) -> dict[str, Any]:
    stated = [q for q in questions if q.group == "stated"]
    t0 = time.perf_counter()
    replies = lm.chat([[{"role": "user", "content": q.text}] for q in stated], max_new_tokens, batch_size=32)
    seconds = (time.perf_counter() - t0) / max(1, len(stated))
    return {"accuracy_stated": _rate([_mentions(r, q.gold or "") for r, q in zip(replies, stated, strict=True)]),
            "latency_mean_s": round(seconds, 4)}
