"""Encyclopedia entries: a title line naming one entity, then its facts in a random order.

The entity is drawn from all kinds at once (a kind weight times a Zipf law over the kind's ranks);
each following sentence states a fact not yet stated, in one of the corpus phrasings, until the
geometric stop or until the facts run out. Compounds' entries give only their harmless properties.
"""

from __future__ import annotations

import re

from scalelab.world.entities import Entity
from scalelab.world.genres.context import CorpusContext, fact_key
from scalelab.world.sampler import Dist, Piece, Sampler
from scalelab.world.templates import CORPUS_TEMPLATES

LOOKAHEAD = re.compile(re.escape("== "))
P_CONTINUE = 0.85
KIND_WEIGHTS = {"person": 0.45, "town": 0.15, "creature": 0.15, "tool": 0.1, "compound": 0.08, "reagent": 0.07}


def title_dist(ctx: CorpusContext) -> tuple[Dist, list[Entity]]:
    """One distribution over every entity of every kind: kind weight x Zipf within the kind."""
    weights: list[float] = []
    entities: list[Entity] = []
    exponent = ctx.world.config.zipf_exponent
    for kind, w in KIND_WEIGHTS.items():
        ents = ctx.world.entities[kind]
        zipf = [(r + 1) ** -exponent for r in range(len(ents))]
        norm = sum(zipf)
        weights += [w * z / norm for z in zipf]
        entities += ents
    return Dist(weights), entities


def generate(s: Sampler, ctx: CorpusContext) -> dict:
    dist, entities = ctx.cached("encyclopedia_titles", lambda: title_dist(ctx))
    i = s.pick(dist, lambda i: (("== ", "template"), (entities[i].name, entities[i].kind), (" ==\n", "template")))
    subject = entities[i]
    templates = CORPUS_TEMPLATES[subject.kind]
    remaining = list(templates)  # facts not yet stated, in schema order

    while True:
        options = [(fact, t) for fact in remaining for t in templates[fact]]

        def sentence(j: int, options: list = options) -> tuple[Piece, ...]:
            fact, t = options[j]
            return t.pieces(subject.name, subject.facts[fact])

        j = s.pick(Dist.uniform(len(options)), sentence)
        fact = options[j][0]
        s.note_fact(fact_key(subject, fact))
        remaining.remove(fact)
        if not remaining or not ctx.keep_going(s, P_CONTINUE, " "):
            return {}
