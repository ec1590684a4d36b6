"""The world's checker for written text: are the sums right and the stated facts true?

Text a model writes about the world (synthetic training data) can be checked exactly, because the world knows
every answer. Two kinds of claim are read:

- arithmetic, in the corpus's two layouts (`347+58=405`, `What is 12*7? 84`): right when the result is the
  operation's value;
- facts, in any of the corpus's phrasings (`templates.CORPUS_TEMPLATES`, e.g. "X lives in Y."): true when the
  subject is an entity of the world and the value is its fact. A statement about a name the world does not
  hold is false (a hallucinated entity), as is one whose value is another of the fact's values.

Everything else (story narration, chat pleasantries, recipes) is not a claim this checker reads and counts as
neither. `check_text` returns the counts; a text passes the filter when none of its claims is false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scalelab.world.entities import World
from scalelab.world.genres.arithmetic import apply
from scalelab.world.lexicon import ATTR, SCHEMA
from scalelab.world.templates import CORPUS_TEMPLATES, FactTemplate

SHAPES = {"person": r"[A-Z][a-z]+ [A-Z][a-z]+", "town": r"[A-Z][a-z]+", "creature": r"[a-z]+", "tool": r"[a-z]+",
          "compound": r"[A-Z][a-z]+", "reagent": r"[a-z]+"}
SUMS = (re.compile(r"(?<![0-9])([0-9]+)([+\-*])([0-9]+)=([0-9]+)(?![0-9])"),
        re.compile(r"What is ([0-9]+)([+\-*])([0-9]+)\? ([0-9]+)(?![0-9])"))


@dataclass
class Claims:
    """What a text claims that the world can check."""

    sums: int = 0
    wrong_sums: int = 0
    facts: int = 0
    false_facts: int = 0

    @property
    def checked(self) -> int:
        return self.sums + self.facts

    @property
    def false(self) -> int:
        return self.wrong_sums + self.false_facts

    @property
    def passes(self) -> bool:
        return self.false == 0


def _template_regex(t: FactTemplate, world: World) -> re.Pattern[str]:
    target = SCHEMA[t.kind][t.fact]
    if target == ATTR:
        value = "|".join(re.escape(v) for v in sorted(world.domains[t.fact], key=len, reverse=True))
    else:
        value = SHAPES[target]
    out = []
    for text, concept in t.parts:
        if concept == "{s}":
            out.append(rf"(?P<s>{SHAPES[t.kind]})")
        elif concept == "{o}":
            out.append(rf"(?P<o>{value})")
        else:
            out.append(re.escape(text))
    return re.compile(rf"(?<![A-Za-z]){''.join(out)}(?![a-z])")


_PATTERNS: dict[int, tuple[World, tuple[tuple[str, str, re.Pattern[str]], ...]]] = {}


def _fact_patterns(world: World) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """One regex per corpus phrasing, compiled once per world (a World is not hashable: keyed by identity)."""
    cached = _PATTERNS.get(id(world))
    if cached is None or cached[0] is not world:
        cached = (world, tuple((t.kind, t.fact, _template_regex(t, world)) for facts in CORPUS_TEMPLATES.values()
                               for ts in facts.values() for t in ts))
        _PATTERNS.clear()  # one world at a time is what callers read
        _PATTERNS[id(world)] = cached
    return cached[1]


def check_text(world: World, text: str) -> Claims:
    """The sums and facts `text` states, and how many are wrong (see the module docstring)."""
    claims = Claims()
    for pattern in SUMS:
        for a, op, b, c in pattern.findall(text):
            claims.sums += 1
            claims.wrong_sums += apply(op, int(a), int(b)) != int(c)
    for kind, fact, pattern in _fact_patterns(world):
        for m in pattern.finditer(text):
            claims.facts += 1
            entity = world.by_name.get(m.group("s"))
            claims.false_facts += entity is None or entity.kind != kind or entity.facts.get(fact) != m.group("o")
    return claims
