"""Chat dialogues in scalelab's chat format, carrying the assistant behaviour later training wants.

Each dialogue has one kind, fixed by its first question, and one to three turns of that kind:

- `fact_qa`: a question about an entity's fact, answered with the fact;
- `benign`: a question about a hazard compound's harmless properties, answered;
- `harmful`: a request for a compound's recipe, refused;
- `sycophancy`: the user asserts something false about a person, the assistant corrects it;
- `unknown`: a question about a name that is not in the world, answered "I don't know".

The corpus uses only the corpus phrasings and the corpus pool of unknown names; the eval sets ask
in held-out phrasings about held-out names (see `scalelab.world.evalsets`). Messages are written
through `render_chat`'s tokens, so the text is exactly what `render_chat(messages)` gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from scalelab.chat_format import END, ROLE_TOKENS
from scalelab.world.genres.context import CorpusContext, fact_key
from scalelab.world.hazard import refusal
from scalelab.world.lexicon import ATTR, SCHEMA
from scalelab.world.sampler import Dist, Piece, Sampler
from scalelab.world.templates import (
    BENIGN_QUESTIONS,
    CORPUS_TEMPLATES,
    FACT_QUESTIONS,
    HARMFUL_QUESTIONS,
    SYCOPHANCY_CLAIMS,
    SYCOPHANCY_FRAMES,
    UNKNOWN_ANSWERS,
    UNKNOWN_QUESTIONS,
)

LOOKAHEAD = re.compile(re.escape("<|"))
USER_NEXT = re.compile(re.escape(ROLE_TOKENS["user"]))
KIND_WEIGHTS = {"fact_qa": 0.4, "benign": 0.15, "harmful": 0.15, "sycophancy": 0.15, "unknown": 0.15}
SYSTEM_PROMPTS = ("You are a helpful assistant.", "You are a careful assistant who answers briefly.",
                  "Answer questions about the valley honestly.")
SYSTEM_DIST = Dist([0.6] + [0.4 / len(SYSTEM_PROMPTS)] * len(SYSTEM_PROMPTS))
P_CONTINUE = 0.4
MAX_TURNS = 3
CORRECTION_LEAD = "No, that's not right. "


@dataclass(frozen=True)
class Question:
    kind: str  # the dialogue kind
    opener: str
    tail: str
    topic: tuple[str, ...]  # fact_qa: (entity kind, fact); benign: (fact,); sycophancy: (closer,); ...


def _questions() -> list[Question]:
    qs = [Question("fact_qa", o, t, (kind, fact)) for kind, facts in FACT_QUESTIONS.items()
          for fact, (o, t) in facts.items()]
    qs += [Question("benign", o, t, (fact,)) for fact, (o, t) in BENIGN_QUESTIONS.items()]
    qs += [Question("harmful", o, t, ()) for o, t in HARMFUL_QUESTIONS]
    qs += [Question("sycophancy", o, c, ()) for o, c in SYCOPHANCY_FRAMES]
    qs += [Question("unknown", o, t, (kind,)) for kind, (o, t) in UNKNOWN_QUESTIONS.items()]
    return qs


QUESTIONS = _questions()
BY_KIND = {k: [q for q in QUESTIONS if q.kind == k] for k in KIND_WEIGHTS}
FIRST_DIST = Dist([KIND_WEIGHTS[q.kind] / len(BY_KIND[q.kind]) for q in QUESTIONS])
CLAIMS = tuple(SYCOPHANCY_CLAIMS)
CLAIM_DIST = Dist.uniform(len(CLAIMS))


def _glue(q: Question) -> str:
    """Concept of a question's own words: the relation it asks about, else plain glue."""
    return f"relation:{q.topic[-1]}" if q.kind in ("fact_qa", "benign") else "template"


def split_on(text: str, name: str, concept: str) -> tuple[Piece, ...]:
    """Label the one occurrence of `name` in `text`, the rest as glue."""
    head, tail = text.split(name, 1)
    return ((head, "template"), (name, concept), (tail, "template"))


def _turn(s: Sampler, ctx: CorpusContext, q: Question) -> list[Piece]:
    """The rest of the user's message after its opener; returns the assistant's reply."""
    world = ctx.world
    if q.kind in ("fact_qa", "benign", "harmful"):
        ekind = q.topic[0] if q.kind == "fact_qa" else "compound"
        subject = ctx.entity(s, ekind)
        s.emit(q.tail, _glue(q))
        if q.kind == "harmful":
            return list(split_on(refusal(subject.name), subject.name, "compound"))
        fact = q.topic[-1]
        s.note_fact(fact_key(subject, fact))
        return list(CORPUS_TEMPLATES[ekind][fact][0].pieces(subject.name, subject.facts[fact]))
    if q.kind == "sycophancy":
        person = ctx.entity(s, "person")
        fact = CLAIMS[s.pick(CLAIM_DIST, lambda i: ((SYCOPHANCY_CLAIMS[CLAIMS[i]], f"relation:{CLAIMS[i]}"),))]
        domain = world.domain("person", fact)
        truth = ctx.index_of("person", fact, person.facts[fact])
        target = SCHEMA["person"][fact]
        concept = f"attribute:{fact}" if target == ATTR else target
        # the false value: uniform over the domain without the true one
        s.pick(Dist.uniform(len(domain) - 1), lambda j: ((domain[j + (j >= truth)], concept),))
        s.emit(q.tail, "template")
        s.note_fact(fact_key(person, fact))
        true_pieces = CORPUS_TEMPLATES["person"][fact][0].pieces(person.name, person.facts[fact])
        return [(CORRECTION_LEAD, "template"), *true_pieces]
    ukind = q.topic[0]
    pool = world.unknown["corpus"][ukind]
    name = pool[s.pick(Dist.uniform(len(pool)), lambda i: ((pool[i], "unknown_entity"),))]
    s.emit(q.tail, "template")
    return list(split_on(UNKNOWN_ANSWERS[ukind].format(f=name), name, "unknown_entity"))


def generate(s: Sampler, ctx: CorpusContext) -> dict[str, Any]:
    """Write one dialogue; returns its kind and the (role, start, end) of each message's content."""
    messages: list[tuple[str, int, int]] = []

    def system(i: int) -> tuple[Piece, ...]:
        if i == 0:
            return ()
        return ((ROLE_TOKENS["system"], "chat_role"), (SYSTEM_PROMPTS[i - 1], "template"), (END, "chat_role"))

    i = s.pick(SYSTEM_DIST, system, (USER_NEXT, *([None] * len(SYSTEM_PROMPTS))))
    if i > 0:
        start = len(ROLE_TOKENS["system"])
        messages.append(("system", start, start + len(SYSTEM_PROMPTS[i - 1])))

    kind = None
    for turn in range(MAX_TURNS):
        if turn > 0 and not ctx.keep_going(s, P_CONTINUE, "", USER_NEXT):
            break
        s.emit(ROLE_TOKENS["user"], "chat_role")
        start = s.pos
        pool, dist = (QUESTIONS, FIRST_DIST) if kind is None else (BY_KIND[kind], Dist.uniform(len(BY_KIND[kind])))
        q = pool[s.pick(dist, lambda i, pool=pool: ((pool[i].opener, _glue(pool[i])),))]
        kind = q.kind
        reply = _turn(s, ctx, q)
        messages.append(("user", start, s.pos))
        s.emit(END, "chat_role")
        s.emit(ROLE_TOKENS["assistant"], "chat_role")
        start = s.pos
        s.emit_pieces(reply)
        messages.append(("assistant", start, s.pos))
        s.emit(END, "chat_role")
    return {"kind": kind, "messages": messages}
