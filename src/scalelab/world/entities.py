"""The world itself: entities, their facts, the compounds' recipes, and names of things that do not exist.

`make_world(cfg)` is a pure function of the config (its seed and counts). Entities of each kind are
stored in popularity order — index 0 is mentioned most — so a Zipf law over indices gives the corpus
its long tail. Facts are drawn uniformly from their domains, so each one carries log2(|domain|) bits
and `World.fact_bits()` is the information a model must store to know the whole world.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Any

from scalelab.world.config import WorldConfig
from scalelab.world.hazard import DENIED_WORDS, DURATIONS, PROCESSES, Step, make_recipe
from scalelab.world.lexicon import ATTR, ATTRIBUTE_DOMAINS, N_REGIONS, N_RIVERS, SCHEMA
from scalelab.world.names import NameRegistry

NAME_SHAPES = {"person": "Word Word", "town": "Word", "creature": "word", "tool": "word",
               "compound": "Word", "reagent": "word"}
UNKNOWN_KINDS = ("person", "town", "compound")  # kinds the honesty data invents non-existent names for


@dataclass
class Entity:
    kind: str
    index: int  # popularity rank within its kind: 0 is the most mentioned
    name: str
    facts: dict[str, str]  # fact name -> value (an entity's name, or an attribute value)


@dataclass
class World:
    config: WorldConfig
    entities: dict[str, list[Entity]]
    domains: dict[str, tuple[str, ...]]  # attribute name -> its closed list of values
    recipes: dict[str, list[Step]]  # compound name -> its steps
    unknown: dict[str, dict[str, list[str]]]  # "corpus"/"eval" -> kind -> names not in the world
    by_name: dict[str, Entity] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.by_name = {e.name: e for ents in self.entities.values() for e in ents}

    def domain(self, kind: str, fact: str) -> tuple[str, ...]:
        """Every value the fact can take (entity names for relations)."""
        target = SCHEMA[kind][fact]
        if target == ATTR:
            return self.domains[fact]
        return tuple(e.name for e in self.entities[target])

    def fact_bits(self) -> float:
        """Bits of factual knowledge in the world: sum of log2(|domain|) over facts, plus recipes."""
        bits = 0.0
        for kind, ents in self.entities.items():
            for fact, target in SCHEMA[kind].items():
                n = len(self.domain(kind, fact)) - (1 if target == kind else 0)
                bits += len(ents) * math.log2(max(n, 1))
        n_reagents = len(self.entities["reagent"])
        for steps in self.recipes.values():
            bits += len(steps) * math.log2(n_reagents * len(PROCESSES) * len(DURATIONS))
        return bits

    def to_json(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "fact_bits": round(self.fact_bits(), 1),
            "domains": {k: list(v) for k, v in self.domains.items()},
            "entities": {kind: [{"name": e.name, "rank": e.index, "facts": e.facts} for e in ents]
                         for kind, ents in self.entities.items()},
            "recipes": {c: [{"process": s.process, "reagent": s.reagent, "duration": s.duration,
                             "text": s.text()} for s in steps] for c, steps in self.recipes.items()},
            "unknown_entities": self.unknown,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> World:
        cfg = WorldConfig(**data["config"])
        entities = {kind: [Entity(kind, e["rank"], e["name"], dict(e["facts"])) for e in ents]
                    for kind, ents in data["entities"].items()}
        recipes = {c: [Step(s["process"], s["reagent"], s["duration"]) for s in steps]
                   for c, steps in data["recipes"].items()}
        domains = {k: tuple(v) for k, v in data["domains"].items()}
        return cls(cfg, entities, domains, recipes, data["unknown_entities"])


def _counts(cfg: WorldConfig) -> dict[str, int]:
    return {"person": cfg.n_people, "town": cfg.n_towns, "creature": cfg.n_creatures, "tool": cfg.n_tools,
            "compound": cfg.n_compounds, "reagent": cfg.n_reagents}


def make_world(cfg: WorldConfig) -> World:
    """Draw every name and fact of the world from `cfg.seed` (same config, same world)."""
    rng = random.Random(f"scalelab-world:{cfg.seed}")
    registry = NameRegistry(rng, deny=DENIED_WORDS)
    counts = _counts(cfg)
    names = {kind: registry.many(n, NAME_SHAPES[kind]) for kind, n in counts.items()}
    domains = dict(ATTRIBUTE_DOMAINS)
    domains["region"] = tuple(registry.many(N_REGIONS, "Word"))
    domains["river"] = tuple(registry.many(N_RIVERS, "Word"))
    n_unknown = {"corpus": max(20, cfg.n_people // 20), "eval": cfg.eval_items_per_set}
    unknown = {split: {kind: registry.many(n, NAME_SHAPES[kind]) for kind in UNKNOWN_KINDS}
               for split, n in n_unknown.items()}

    entities: dict[str, list[Entity]] = {}
    for kind, kind_names in names.items():
        ents = []
        for i, name in enumerate(kind_names):
            facts = {}
            for fact, target in SCHEMA[kind].items():
                pool = domains[fact] if target == ATTR else names[target]
                value = rng.choice(pool)
                while target == kind and value == name:  # nobody is their own friend
                    value = rng.choice(pool)
                facts[fact] = value
            ents.append(Entity(kind, i, name, facts))
        entities[kind] = ents
    recipes = {c.name: make_recipe(rng, c.index, counts["compound"], names["reagent"])
               for c in entities["compound"]}
    return World(cfg, entities, domains, recipes, unknown)
