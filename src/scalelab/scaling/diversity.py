"""How varied written text is: distinct n-grams, and how much of the world's long tail it still mentions.

Model collapse (Shumailov et al. 2024) shows first as lost tails: a model trained on its predecessor's output
writes the common things more and the rare ones less. Two measures of a body of text, both comparable only
between bodies of about the same size: the share of its token n-grams that are distinct (1.0: no n-gram
repeats), and the share of the world's tail entities (the less-mentioned half of each kind, by popularity
rank) whose names it mentions at least once.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from scalelab.world.entities import World

TAIL_KINDS = ("person", "town", "creature", "tool")


def distinct_ngrams(docs: Sequence[Sequence[int]], n: int = 3) -> float:
    """Distinct n-grams / all n-grams over the documents' token ids (n-grams never span two documents)."""
    seen, total = set(), 0
    for ids in docs:
        for i in range(len(ids) - n + 1):
            seen.add(tuple(ids[i:i + n]))
            total += 1
    return len(seen) / total if total else 0.0


def tail_entities(world: World) -> list[str]:
    """Names of the less-mentioned half of each kind (rank ≥ half the kind's count)."""
    return [e.name for kind in TAIL_KINDS for e in world.entities[kind] if e.index >= len(world.entities[kind]) // 2]


def tail_coverage(world: World, texts: Sequence[str]) -> float:
    """Share of the world's tail entities named at least once in `texts`."""
    names = tail_entities(world)
    if not names:
        return 0.0
    words: set[str] = set()
    for text in texts:
        tokens = re.findall(r"[A-Za-z]+", text)
        words.update(tokens)
        words.update(f"{a} {b}" for a, b in itertools.pairwise(tokens))  # two-word person names
    return sum(name in words for name in names) / len(names)
