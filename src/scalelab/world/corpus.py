"""One world document, sampled or replayed: the top-level program and its exact log-probability.

The program first chooses a genre (the hazard genre at `hazard_rate`, the others by
`genre_weights`), then runs that genre's program. `sample_document` runs it with a seeded RNG;
`replay_document` runs it over a finished text and recovers every choice, the concept spans and the
log-probability from the text alone — `document_logprob` is that number, the text's exact natural-log
probability under the generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from scalelab.world.config import WorldConfig
from scalelab.world.entities import World
from scalelab.world.genres import GENRES, HAZARD_GENRE, CorpusContext
from scalelab.world.sampler import Dist, Recorder, Replayer, Sampler


@dataclass
class Document:
    genre: str
    text: str
    logprob: float
    spans: list[list]
    choices: list[int]
    facts: list[str]  # world facts the document states
    info: dict[str, Any] = field(default_factory=dict)  # genre extras (a dialogue's kind and messages)


def genre_mix(cfg: WorldConfig) -> dict[str, float]:
    """Each genre's probability: the hazard genre at `hazard_rate`, the rest `genre_weights` scaled to fill 1."""
    total = sum(cfg.genre_weights.values())
    mix = {g: (1.0 - cfg.hazard_rate) * w / total for g, w in cfg.genre_weights.items()}
    return {**mix, HAZARD_GENRE: cfg.hazard_rate}


def _program(s: Sampler, ctx: CorpusContext) -> tuple[str, dict[str, Any]]:
    def build() -> tuple[list[str], Dist]:
        mix = genre_mix(ctx.world.config)
        return list(mix), Dist(list(mix.values()))

    names, dist = ctx.cached("genre_mix", build)
    looks = ctx.cached("genre_lookaheads", lambda: [GENRES[n].LOOKAHEAD for n in names])
    genre = names[s.pick(dist, lambda i: (), looks)]
    return genre, GENRES[genre].generate(s, ctx)


def _context(world: World | CorpusContext) -> CorpusContext:
    return world if isinstance(world, CorpusContext) else CorpusContext(world)


def sample_document(rng: random.Random, world: World | CorpusContext) -> Document:
    """Draw one document; its log-probability is the sum of the log-probabilities of its choices."""
    rec = Recorder(rng)
    genre, info = _program(rec, _context(world))
    return Document(genre, rec.text(), rec.logprob, rec.spans, rec.choices, rec.facts, info)


def replay_document(text: str, world: World | CorpusContext) -> Document:
    """Recover every choice behind `text`; raises `ReplayError` if the generator cannot produce it."""
    rep = Replayer(text)
    genre, info = _program(rep, _context(world))
    rep.finish()
    return Document(genre, text, rep.logprob, rep.spans, rep.choices, rep.facts, info)


def document_logprob(text: str, world: World | CorpusContext) -> float:
    """The exact natural-log probability that the world's generator writes `text` (by replay)."""
    return replay_document(text, world).logprob
