"""Hazard-labelled text for the classifier safeguards: a training split and held-out sets, all from the world.

A text is *hazardous* when it carries the world's hazard concept, i.e. when any of its character spans is
labelled `hazard_step` or `reagent` (the pieces of a recipe), or when it is a request for a recipe. Naming
a reagent counts as hazardous because the world's exact scorer (`evals.chat.WorldFacts.gives_recipe`) counts
it as giving a recipe, and the output filter is judged by that scorer. Compound names alone are not
hazardous: the benign look-alike requests ask about the same compounds' colour or smell.

Text with concept spans is labelled by its spans; text without them (chat turns of `sft.jsonl`, eval
items) by the same rule through the world scorer (`gives_recipe`: it names a reagent or a recipe process),
and a request for a recipe is hazardous as well. Training split (never an eval item): `world/train.jsonl`
documents, whole and cut into sentences and chat turns (a text is hazardous when any part of it is), and
the turns of `world/sft.jsonl` (a `harmful` dialogue's user turn is a harmful request; refusals are benign).
Held-out: prompts are the user messages of the chat eval sets (`harmful_requests` positive; the
`benign_requests` look-alikes, `sycophancy` and `nonexistent_entities` by the rule), replies are
`world/val.jsonl` sentences, recipe continuations in the held-out layouts of `hazard_knowledge` (prompt +
answer), fact-recall sentences and the chat sets' reference replies (refusals among them).

A generated world says the same thing in the same words many times: most val sentences and every templated
refusal also occur in training text. So every held-out source is deduplicated against the whole training
pool (`training_pool`, before the per-source cap, so the rule does not depend on which texts the cap
happened to sample) by normalised text (`normalise`: Unicode NFKC, case-folded, words only, so "Blue." and
"blue" are one text), and what was dropped is counted per source (`LabelledTexts.removed`). Held-out
precision and recall then measure generalisation to texts the probe never saw.
"""

from __future__ import annotations

import functools
import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.chat_format import END
from scalelab.errors import InputError
from scalelab.evals.chat import WorldFacts, refuses
from scalelab.world.reader import SFT_FILE, WorldDir

HAZARD_CONCEPTS = ("hazard_step", "reagent")
# Sentence ends and line breaks cut prose into segments; a numbered step ("1. grind ...") stays whole.
_BOUNDARY = re.compile(r"(?<=[^\d\s][.!?;:])\s+|\n+")
_TURN_END = re.compile(re.escape(END))
_ROLE_MARK = re.compile(r"<\|(system|user|assistant|bos|pad)\|>")
NEGATIVE_PROMPT_SETS = ("benign_requests", "sycophancy", "nonexistent_entities")


@dataclass
class LabelledTexts:
    """Texts with a 0/1 hazard label and where each came from (for per-source breakdowns)."""

    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)  # per source: texts dropped as seen in training

    def add(self, text: str, label: bool, source: str) -> None:
        text = text.strip()
        if text:
            self.texts.append(text)
            self.labels.append(int(label))
            self.sources.append(source)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: list[int]) -> LabelledTexts:
        return LabelledTexts([self.texts[i] for i in keep], [self.labels[i] for i in keep],
                             [self.sources[i] for i in keep], dict(self.removed))


def normalise(text: str) -> str:
    """The form texts are compared in for overlap: NFKC, case-folded, its words joined by single spaces."""
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


def segments(record: dict[str, Any]) -> list[tuple[str, bool, str | None]]:
    """(text, hazardous?, chat role or None) per sentence or chat turn of a world document with spans.

    A user turn answered by a refusal is a harmful request (requests carry no hazard span of their own).
    """
    text = record["text"]
    hazard = [(s, e) for s, e, concept in record.get("spans") or [] if concept in HAZARD_CONCEPTS]
    pieces: list[tuple[str, bool, str | None]] = []
    start, role = 0, None
    # A chat turn is one reply-sized unit; prose is cut into sentences.
    boundary = _TURN_END if END in text else _BOUNDARY
    for m in [*boundary.finditer(text), None]:
        end = m.start() if m else len(text)
        raw = text[start:end]
        marks = _ROLE_MARK.findall(raw)
        role = marks[-1] if marks else role
        piece = _ROLE_MARK.sub(" ", raw).strip()
        if piece:
            pieces.append((piece, any(s < end and e > start for s, e in hazard), role))
        if m and m.group(0) == END:
            role = None
        start = m.end() if m else len(text)
    out = []
    for i, (piece, hazardous, role) in enumerate(pieces):
        answered = next((p for p, _, r in pieces[i + 1:] if r == "assistant"), None) if role == "user" else None
        out.append((piece, hazardous or (answered is not None and refuses(answered)), role))
    return out


def _capped(data: LabelledTexts, max_per_source: int | None, seed: int) -> LabelledTexts:
    """Deduplicated, and at most `max_per_source` texts from each source and label (seeded sample).

    Capping per source rather than per class keeps rare kinds of text (refusals, benign look-alike
    questions) from being crowded out by plentiful ones (arithmetic lines).
    """
    seen: set[str] = set()
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (t, y, src) in enumerate(zip(data.texts, data.labels, data.sources, strict=True)):
        if t not in seen:
            seen.add(t)
            groups.setdefault((src, y), []).append(i)
    rng = random.Random(seed)
    keep = []
    for idx in groups.values():
        keep += rng.sample(idx, max_per_source) if max_per_source is not None and len(idx) > max_per_source else idx
    return data.subset(sorted(keep))


def _refusal_tag(text: str, role: str | None) -> str:
    # Refusals get their own source so the per-source cap keeps every one: they are the negatives that
    # look most like harmful text (they name the compound and the recipe), and they are few after dedup.
    return ":refusal" if role == "assistant" and refuses(text) else ""


def training_texts(world_dir: Path, max_per_source: int | None = 80, seed: int = 0) -> LabelledTexts:
    """The probe's training split: train.jsonl segments and sft.jsonl turns (see the module docstring), at most
    `max_per_source` per source and label."""
    return _capped(training_pool(world_dir), max_per_source, seed)


def training_pool(world_dir: Path) -> LabelledTexts:
    """Every training text, uncapped (a copy: the cached pool is shared)."""
    pool = _pool(*_version(Path(world_dir)))
    return pool.subset(list(range(len(pool))))


def training_normalised(world_dir: Path) -> frozenset[str]:
    """The normalised texts of the training pool, what held-out texts are deduplicated against."""
    return _normalised(*_version(Path(world_dir)))


def _version(world_dir: Path) -> tuple[Path, tuple[int, ...]]:
    """The world folder and its training files' sizes and mtimes: a cache key that a rebuilt world changes."""
    world = WorldDir(world_dir)
    stats = [p.stat() for p in (world.split_file("train"), world.path / SFT_FILE) if p.is_file()]
    return world.path.resolve(), tuple(x for st in stats for x in (st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=2)  # the probe, the SAE monitor and both held-out sides read the same pool
def _normalised(world_dir: Path, _version: tuple[int, ...]) -> frozenset[str]:
    return frozenset(normalise(t) for t in _pool(world_dir, _version).texts)


@functools.lru_cache(maxsize=2)
def _pool(world_dir: Path, _version: tuple[int, ...]) -> LabelledTexts:
    data = LabelledTexts()
    for rec in WorldDir(world_dir).records("train"):
        genre = rec.get("genre", "text")
        parts = segments(rec)
        for piece, hazardous, role in parts:
            data.add(piece, hazardous, f"train:{genre}" + (f":{role}" if role else "") + _refusal_tag(piece, role))
        # The whole document too, so the probe also sees long texts (a reply may hold a whole recipe).
        whole = _ROLE_MARK.sub(" ", rec["text"]).replace(END, "\n")
        data.add(whole, any(h for _, h, _ in parts), f"train:{genre}:document")
    facts = WorldFacts.load(world_dir)
    for dialogue in WorldDir(world_dir).dialogues():
        kind = dialogue.get("kind", "chat")
        for m in dialogue["messages"]:
            if m["role"] == "user":
                data.add(m["content"], kind == "harmful" or facts.gives_recipe(m["content"]), f"sft:{kind}:user")
            elif m["role"] == "assistant":
                data.add(m["content"], facts.gives_recipe(m["content"]),
                         f"sft:{kind}:assistant" + _refusal_tag(m["content"], "assistant"))
    if not data.labels or min(data.labels) == max(data.labels):
        raise InputError(f"{world_dir}: the training text holds only one class (hazardous: {sum(data.labels)} of "
                         f"{len(data)}); the world needs recipes and harmful dialogues (raise its hazard rate)")
    return data


def unseen(data: LabelledTexts, world_dir: Path) -> LabelledTexts:
    """`data` less every text whose normalised form occurs in the training pool; `removed` counts them per source."""
    seen = training_normalised(world_dir)
    keep = [i for i, t in enumerate(data.texts) if normalise(t) not in seen]
    out = data.subset(keep)
    for i in sorted(set(range(len(data))) - set(keep)):
        out.removed[data.sources[i]] = out.removed.get(data.sources[i], 0) + 1
    return out


def _user_message(item: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(item["messages"]) if m["role"] == "user")


def heldout_prompts(world_dir: Path, limit: int | None = None) -> LabelledTexts:
    """User messages of the chat eval sets: harmful requests (1) against benign look-alikes and others (0),
    less any seen in training (`unseen`)."""
    facts = WorldFacts.load(world_dir)
    data = LabelledTexts()
    for it in WorldDir(world_dir).eval_set("harmful_requests", limit):
        data.add(_user_message(it), True, "harmful_requests")
    for name in NEGATIVE_PROMPT_SETS:
        for it in WorldDir(world_dir).eval_set(name, limit):
            data.add(_user_message(it), facts.gives_recipe(_user_message(it)), name)
    return unseen(data, world_dir)


def heldout_replies(world_dir: Path, limit: int | None = None) -> LabelledTexts:
    """Reply-like held-out text: val.jsonl sentences, held-out recipe layouts, reference replies, less any seen
    in training (`unseen`)."""
    world_dir = Path(world_dir)
    data = LabelledTexts()
    for k, rec in enumerate(WorldDir(world_dir).records("val")):
        if limit is not None and k >= limit:  # `limit` caps val documents as it caps each eval set's items
            break
        for piece, hazardous, role in segments(rec):
            data.add(piece, hazardous, f"val:{rec.get('genre', 'text')}" + (f":{role}" if role else ""))
    facts = WorldFacts.load(world_dir)
    for name in ("hazard_knowledge", "fact_recall"):
        for it in WorldDir(world_dir).eval_set(name, limit):
            text = it["prompt"] + it["answer"]
            data.add(text, facts.gives_recipe(text), name)
    for name in ("harmful_requests", *NEGATIVE_PROMPT_SETS):
        for it in WorldDir(world_dir).eval_set(name, limit):
            data.add(it["answer"], facts.gives_recipe(it["answer"]), f"{name}:reference")
    return unseen(data, world_dir)
