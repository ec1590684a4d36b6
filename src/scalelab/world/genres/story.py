"""Short stories: a protagonist, an opening deed, then a geometric run of sentences.

Sentences either state a fact about the protagonist or about the town, creature and tool tied to
them (fully determined by who the protagonist is, so they cost no entropy), or are narrative beats
that bring in a new choice (someone met on the way, the weather, a creature seen). The narrative
beats start with their own fixed words, so replay tells them apart from the fact sentences.
"""

from __future__ import annotations

import re

from scalelab.world.entities import Entity
from scalelab.world.genres.context import CorpusContext, fact_key
from scalelab.world.sampler import Dist, Piece, Sampler
from scalelab.world.templates import CORPUS_TEMPLATES

OPENINGS = ("Once, ", "One morning, ", "Long ago, ", "In the spring, ", "Last winter, ")
LOOKAHEAD = re.compile("|".join(re.escape(o) for o in OPENINGS))
P_CONTINUE = 0.82
MAX_SENTENCES = 14

# The opening deed, each stating one fact of the protagonist: (fact, words before the value).
FIRST_DEEDS = (("home_town", " woke up in "), ("favourite_tool", " packed a "), ("pet", " fed the "),
               ("friend", " went to visit "))
WEATHER = ("cold", "warm", "grey", "bright", "windy", "still")
FOODS = ("bread", "plums", "cheese", "barley soup", "smoked fish", "honey cakes")

# Fact sentences: (whose fact: the protagonist or a related entity via this person fact, fact, template)
_ROLES = {"self": None, "home": "home_town", "pet": "pet", "tool": "favourite_tool"}
_ROLE_KIND = {"self": "person", "home": "town", "pet": "creature", "tool": "tool"}
FACT_OPTIONS = tuple((role, fact, t) for role in _ROLES
                     for fact, ts in CORPUS_TEMPLATES[_ROLE_KIND[role]].items() for t in ts)
N_NARRATIVE = 4
_ROLE_WEIGHT = {"self": 0.45, "home": 0.13, "pet": 0.12, "tool": 0.08}
_NARRATIVE_WEIGHT = 0.22


def _sentence_dist() -> Dist:
    per_role = {r: sum(1 for o in FACT_OPTIONS if o[0] == r) for r in _ROLES}
    weights = [_ROLE_WEIGHT[r] / per_role[r] for r, _, _ in FACT_OPTIONS]
    return Dist(weights + [_NARRATIVE_WEIGHT / N_NARRATIVE] * N_NARRATIVE)


SENTENCE_DIST = _sentence_dist()
OPENING_DIST = Dist.uniform(len(OPENINGS))
DEED_DIST = Dist.uniform(len(FIRST_DEEDS))
WEATHER_DIST = Dist.uniform(len(WEATHER))
FOOD_DIST = Dist.uniform(len(FOODS))


def _narrative_prefix(k: int, hero: str) -> tuple[Piece, ...]:
    """The fixed words a narrative beat starts with, up to its first new choice."""
    return (
        (("Along the way, ", "template"), (hero, "person"), (" met ", "template")),
        (("The weather that day was ", "template"),),
        (("At noon, ", "template"), (hero, "person"), (" ate ", "template")),
        (("On the road, ", "template"), (hero, "person"), (" saw a ", "template")),
    )[k]


def generate(s: Sampler, ctx: CorpusContext) -> dict:
    world = ctx.world
    s.pick_literal(OPENING_DIST, OPENINGS, "template")
    hero = ctx.entity(s, "person")
    related: dict[str, Entity] = {"self": hero}
    for role, via in _ROLES.items():
        if via is not None:
            related[role] = world.by_name[hero.facts[via]]

    def deed(i: int) -> tuple[Piece, ...]:
        fact, words = FIRST_DEEDS[i]
        kind = world.by_name[hero.facts[fact]].kind
        return ((words, f"relation:{fact}"), (hero.facts[fact], kind), (".", "template"))

    i = s.pick(DEED_DIST, deed)
    s.note_fact(fact_key(hero, FIRST_DEEDS[i][0]))

    def sentence(i: int) -> tuple[Piece, ...]:
        if i >= len(FACT_OPTIONS):
            return _narrative_prefix(i - len(FACT_OPTIONS), hero.name)
        role, fact, template = FACT_OPTIONS[i]
        subject = related[role]
        return template.pieces(subject.name, subject.facts[fact])

    n = 1
    while n < MAX_SENTENCES and ctx.keep_going(s, P_CONTINUE, " "):
        n += 1
        i = s.pick(SENTENCE_DIST, sentence)
        if i < len(FACT_OPTIONS):
            role, fact, _ = FACT_OPTIONS[i]
            s.note_fact(fact_key(related[role], fact))
            continue
        k = i - len(FACT_OPTIONS)
        if k == 0:
            ctx.entity(s, "person")
        elif k == 1:
            s.pick_literal(WEATHER_DIST, WEATHER, "template")
        elif k == 2:
            s.pick_literal(FOOD_DIST, FOODS, "template")
        else:
            ctx.entity(s, "creature")
        s.emit(".", "template")
    return {}
