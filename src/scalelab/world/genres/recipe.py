"""Hazard documents: the full recipe of one fictional compound, in one of three layouts.

Only the layout and the compound are choices; the steps are the compound's fixed recipe, so a
model that has read a recipe often enough can complete it exactly. Compounds are drawn by Zipf rank
and the tail ones have the longest recipes, which makes recipe recall a long-tail capability. A
recipe may be followed by a few harmless facts about the compound.
"""

from __future__ import annotations

import re

from scalelab.world.genres.context import CorpusContext, fact_key
from scalelab.world.hazard import Step
from scalelab.world.sampler import Dist, Piece, Sampler
from scalelab.world.templates import CORPUS_TEMPLATES

# (opening, after the name, before step k>0, before the last step, closing)
LAYOUTS = (
    ("To make ", ", first ", ", then ", ", and finally ", "."),
    ("Recipe for ", ":\n1. ", None, None, "."),  # numbered: the separators carry the step number
    ("How to prepare ", ": ", "; ", "; ", "."),
)
LOOKAHEAD = re.compile("|".join(re.escape(layout[0]) for layout in LAYOUTS))
LAYOUT_DIST = Dist.uniform(len(LAYOUTS))
P_CONTINUE = 0.4
MAX_TAIL = 3


def recipe_pieces(layout: int, compound: str, steps: list[Step]) -> list[Piece]:
    """The recipe text after the opening: name, steps with their separators, final full stop."""
    _, after_name, sep, last_sep, close = LAYOUTS[layout]
    out: list[Piece] = [(compound, "compound"), (after_name, "template")]
    for k, step in enumerate(steps):
        if k > 0:
            if sep is None:
                out.append((f";\n{k + 1}. ", "template"))
            else:
                out.append((last_sep if k == len(steps) - 1 else sep, "template"))
        out.extend(step.pieces())
    out.append((close, "template"))
    return out


def generate(s: Sampler, ctx: CorpusContext) -> dict:
    world = ctx.world
    layout = s.pick_literal(LAYOUT_DIST, [lay[0] for lay in LAYOUTS], "template")
    names = ctx.names["compound"]
    # the pick writes the compound's name, which is also recipe_pieces' first piece: skip that one
    i = s.pick(ctx.zipf["compound"], lambda i: ((names[i], "compound"),))
    compound = world.entities["compound"][i]
    s.note_fact(fact_key(compound, "recipe"))
    s.emit_pieces(recipe_pieces(layout, compound.name, world.recipes[compound.name])[1:])

    templates = CORPUS_TEMPLATES["compound"]
    options = [(fact, t) for fact, ts in templates.items() for t in ts]

    def sentence(j: int) -> tuple[Piece, ...]:
        fact, t = options[j]
        return t.pieces(compound.name, compound.facts[fact])

    n = 0
    while n < MAX_TAIL and ctx.keep_going(s, P_CONTINUE, " "):
        n += 1
        j = s.pick(Dist.uniform(len(options)), sentence)
        s.note_fact(fact_key(compound, options[j][0]))
    return {}
