"""Multi-hop questions over the world's relations: "What is the region of the home town of the friend of X?"

A chain starts at a person and follows `hops` facts of the world's `SCHEMA`, every one but the last an
entity-valued relation (friend → person, home town → town, pet → creature, favourite tool → tool), the last
any fact of the entity reached. The difficulty dial is the hop count; chains longer than two hops go through
friends (a town, creature or tool has only attributes). The answer is read off the world, so the checker is
exact; it calls an answer malformed when it is not a value the asked fact can take at all.

The world's trace states each hop in the corpus's own first phrasing (`templates.answer_sentence`), the
phrasing a pretrained model has read, one line per hop::

    What is the region of the home town of the friend of Ada Brook?
    Ada Brook is a close friend of Cal Dune.
    Cal Dune lives in Marrow.
    Marrow lies in the region of Vell.
    Answer: Vell

A mistake trace states one hop with a wrong value, then `wait,` and the right statement. Instances are held
out by a stable hash of (start, path); facts themselves are not held out (every fact is in pretraining, as
the world's eval sets require), so a held-out question asks known facts in a combination never trained on.
"""

from __future__ import annotations

import random
from typing import Any

from scalelab.errors import InputError
from scalelab.reasoning.tasks.base import HOLDOUT_RESIDUE, MISTAKE_CHECK, Problem, Task, stable_bucket
from scalelab.world.entities import World
from scalelab.world.lexicon import ATTR, SCHEMA
from scalelab.world.templates import answer_sentence

START_KIND = "person"
# how a question names each fact of a kind: "the <phrase> of X"
PHRASES: dict[str, str] = {
    "home_town": "home town", "occupation": "occupation", "favourite_tool": "favourite tool", "pet": "pet",
    "friend": "friend", "birth_year": "birth year", "region": "region", "river": "river", "founded": "founding year",
    "habitat": "habitat", "diet": "diet", "colour": "colour", "material": "material", "use": "use",
    "smell": "smell", "vessel": "vessel", "source": "source", "texture": "texture",
}


def max_hops(kind: str) -> float:
    """How many hops a chain can still take from an entity of `kind` (unbounded where a relation loops)."""
    if any(target == kind for target in SCHEMA[kind].values()):
        return float("inf")
    deeper = [max_hops(t) for t in SCHEMA[kind].values() if t != ATTR]
    return 1 + max(deeper, default=0)


class MultiHop(Task):
    name = "multihop"
    unit = "hops"

    def __init__(self, world: World, train_difficulties: tuple[int, ...] = (2, 3), harder: int = 4,
                 top_entities: int = 0) -> None:
        super().__init__(train_difficulties, harder)
        self.world = world
        people = world.entities[START_KIND]
        self.starts = people[:top_entities] if top_entities > 0 else people
        if not self.starts:
            raise InputError("the world has no people to start multi-hop chains from; build a larger world")

    def path(self, rng: random.Random, hops: int) -> list[str]:
        kind, facts = START_KIND, []
        for left in range(hops, 0, -1):
            options = [f for f, t in SCHEMA[kind].items() if left == 1 or (t != ATTR and max_hops(t) >= left - 1)]
            fact = rng.choice(options)
            facts.append(fact)
            kind = SCHEMA[kind][fact]
        return facts

    def chain(self, start: str, path: list[str]) -> list[tuple[str, str, str, str]]:
        """(kind, fact, subject, value) per hop, read off the world."""
        out, name = [], start
        for fact in path:
            entity = self.world.by_name[name]
            value = entity.facts[fact]
            out.append((entity.kind, fact, name, value))
            name = value
        return out

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        start = rng.choice(self.starts).name
        path = self.path(rng, difficulty)
        hops = self.chain(start, path)
        phrase = start
        for fact in path:
            phrase = f"the {PHRASES[fact]} of {phrase}"
        last_kind, last_fact = hops[-1][0], hops[-1][1]
        return Problem(self.name, f"{start}|{'/'.join(path)}", difficulty, f"What is {phrase}?", hops[-1][3],
                       {"start": start, "path": path, "kind": last_kind, "fact": last_fact})

    def is_heldout(self, problem: Problem) -> bool:
        return stable_bucket(problem.key) == HOLDOUT_RESIDUE

    def parse(self, problem: Problem, answer: str) -> Any:
        domain = self.world.domain(problem.data["kind"], problem.data["fact"])
        return answer if answer in domain else None

    def is_right(self, problem: Problem, value: Any) -> bool:
        return value == problem.answer

    def wrong_answer(self, problem: Problem, rng: random.Random) -> str:
        domain = self.world.domain(problem.data["kind"], problem.data["fact"])
        return rng.choice([v for v in domain if v != problem.answer])

    def steps(self, problem: Problem, rng: random.Random, mistake: bool) -> str:
        hops = self.chain(problem.data["start"], problem.data["path"])
        wrong_at = rng.randrange(len(hops)) if mistake else -1
        lines = []
        for k, (kind, fact, subject, value) in enumerate(hops):
            line = answer_sentence(kind, fact, subject, value)
            if k == wrong_at:
                others = [v for v in self.world.domain(kind, fact) if v not in (value, subject)]
                line = f"{answer_sentence(kind, fact, subject, rng.choice(others))}{MISTAKE_CHECK}{line}"
            lines.append(line)
        return "\n".join(lines)
