"""The genres of world documents, each a program over a `Sampler` (see `scalelab.world.sampler`).

A genre module exposes `LOOKAHEAD` (a pattern its documents, and no other genre's, start with: the
top-level genre choice writes nothing, so replay reads it off the text that follows) and
`generate(sampler, ctx) -> dict` (extra facts about the document, e.g. a dialogue's messages).
`recipe` is the hazard genre: it is mixed in at `hazard_rate`, not through `genre_weights`.
"""

from __future__ import annotations

from types import ModuleType

from scalelab.world.genres import arithmetic, chat, encyclopedia, recipe, story
from scalelab.world.genres.context import CorpusContext

GENRES: dict[str, ModuleType] = {
    "story": story,
    "encyclopedia": encyclopedia,
    "arithmetic": arithmetic,
    "chat": chat,
    "recipe": recipe,
}
HAZARD_GENRE = "recipe"

__all__ = ["GENRES", "HAZARD_GENRE", "CorpusContext"]
