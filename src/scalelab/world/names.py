"""Invented names built from syllables, unique and prefix-free across the whole world.

Replay resolves "which entity" by matching names against the text, so no name may be a prefix of
another (`Vel` next to `Velmor` would let one text decode two ways). `NameRegistry` enforces that for
every name the world hands out — entities, regions, rivers and the made-up names of entities that do
not exist — and rejects names that contain a word from a deny-list, so no invented name happens to
spell a real hazard term.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from scalelab.errors import InputError

_ONSETS = ("b", "br", "d", "dr", "f", "g", "gl", "h", "k", "kr", "l", "m", "n", "p", "r",
           "s", "sh", "sk", "t", "th", "tr", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia")
_CODAS = ("", "", "", "n", "r", "l", "s", "th", "m", "k", "sk", "nd")


class NameRegistry:
    """Hands out names that are unique, prefix-free among themselves and free of denied substrings."""

    def __init__(self, rng: random.Random, deny: Iterable[str] = ()) -> None:
        self.rng = rng
        self.deny = tuple(d.lower() for d in deny)
        self.names: set[str] = set()
        self._prefixes: set[str] = set()  # every proper prefix of every registered name

    def accepts(self, name: str) -> bool:
        low = name.lower()
        if any(d in low for d in self.deny):
            return False
        if name in self.names or name in self._prefixes:
            return False
        return not any(name[:k] in self.names for k in range(1, len(name)))

    def register(self, name: str) -> str:
        if not self.accepts(name):
            raise ValueError(f"name {name!r} collides with an existing name or a denied word")
        self.names.add(name)
        self._prefixes.update(name[:k] for k in range(1, len(name)))
        return name

    def word(self, min_syllables: int, max_syllables: int) -> str:
        """A lowercase word of syllables (onset + vowel, the last one possibly closed by a coda)."""
        rng = self.rng
        n = rng.randint(min_syllables, max_syllables)
        parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n)]
        return "".join(parts) + rng.choice(_CODAS)

    def new(self, shape: str, tries: int = 10_000) -> str:
        """A fresh name of a shape: `word` (lowercase), `Word`, or `Word Word` (a person)."""
        for _ in range(tries):
            if shape == "Word Word":
                name = f"{self.word(1, 2).capitalize()} {self.word(2, 2).capitalize()}"
            elif shape == "Word":
                name = self.word(2, 3).capitalize()
            elif shape == "word":
                name = self.word(2, 3)
            else:
                raise ValueError(f"unknown name shape {shape!r}; use 'word', 'Word' or 'Word Word'")
            if len(name) >= 4 and self.accepts(name):
                return self.register(name)
        raise InputError(f"could not find a free {shape!r} name after {tries} tries; the world is too large "
                           f"for the syllable inventory")

    def many(self, n: int, shape: str) -> list[str]:
        return [self.new(shape) for _ in range(n)]
