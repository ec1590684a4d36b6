"""What every document program shares: the world, its popularity laws, and the small loops they all use.

`CorpusContext` precomputes, once per world, the distributions the programs draw from (Zipf laws over
each kind's entities, the genre mix), so sampling a document is a handful of bisects. The helpers
here are the only two control-flow patterns the genres need: pick an entity by popularity, and the
geometric continue-or-stop choice that sets a document's length (its "stop" branch only matches at
the end of the text, which is how replay knows a document is over).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scalelab.world.entities import Entity, World
from scalelab.world.sampler import END_OF_TEXT, Dist, Sampler


def fact_key(entity: Entity, fact: str) -> str:
    """The id of one world fact, counted each time a document states it."""
    return f"{entity.kind}:{entity.index}:{fact}"


@dataclass
class CorpusContext:
    world: World
    zipf: dict[str, Dist] = field(init=False)
    names: dict[str, list[str]] = field(init=False)
    value_index: dict[tuple[str, str], dict[str, int]] = field(init=False)
    _continue: dict[float, Dist] = field(init=False, default_factory=dict)
    _cache: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        s = self.world.config.zipf_exponent
        self.zipf = {kind: Dist.zipf(len(ents), s) for kind, ents in self.world.entities.items()}
        self.names = {kind: [e.name for e in ents] for kind, ents in self.world.entities.items()}
        self.value_index = {}

    def entity(self, s: Sampler, kind: str) -> Entity:
        """Choose an entity of `kind` by popularity (Zipf over rank) and write its name."""
        names = self.names[kind]
        i = s.pick(self.zipf[kind], lambda i: ((names[i], kind),))
        return self.world.entities[kind][i]

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """A per-world precomputation (e.g. a genre's distribution), built on first use."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def continue_dist(self, p_continue: float) -> Dist:
        if p_continue not in self._continue:
            self._continue[p_continue] = Dist([p_continue, 1.0 - p_continue])
        return self._continue[p_continue]

    def keep_going(self, s: Sampler, p_continue: float, sep: str,
                   next_starts: re.Pattern[str] | None = None) -> bool:
        """The geometric length choice: write `sep` and go on, or stop (only possible at the text's end)."""
        sep_pieces = ((sep, "template"),)
        i = s.pick(self.continue_dist(p_continue), lambda i: sep_pieces if i == 0 else (),
                   (next_starts, END_OF_TEXT))
        return i == 0

    def index_of(self, kind: str, fact: str, value: str) -> int:
        """Position of `value` in the domain of `kind.fact` (cached per fact)."""
        key = (kind, fact)
        if key not in self.value_index:
            self.value_index[key] = {v: i for i, v in enumerate(self.world.domain(kind, fact))}
        return self.value_index[key][value]
