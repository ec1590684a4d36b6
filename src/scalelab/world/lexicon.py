"""The world's schema and the closed vocabularies its attribute values come from.

`SCHEMA` says which facts each kind of entity has and what kind of value each fact takes: another
entity kind (a relation, e.g. a person's home town) or an attribute (a value from a closed list, e.g.
an occupation). Everything here is ordinary, harmless vocabulary; the hazard domain's invented
processes live in `scalelab.world.hazard`.
"""

from __future__ import annotations

ATTR = "attribute"
ENTITY_KINDS = ("person", "town", "creature", "tool", "compound", "reagent")

# kind -> fact name -> value kind (an entity kind, or ATTR for a closed-vocabulary attribute)
SCHEMA: dict[str, dict[str, str]] = {
    "person": {"home_town": "town", "occupation": ATTR, "favourite_tool": "tool", "pet": "creature",
               "friend": "person", "birth_year": ATTR},
    "town": {"region": ATTR, "river": ATTR, "founded": ATTR},
    "creature": {"habitat": ATTR, "diet": ATTR, "colour": ATTR},
    "tool": {"material": ATTR, "use": ATTR},
    "compound": {"colour": ATTR, "smell": ATTR, "vessel": ATTR},
    "reagent": {"source": "creature", "texture": ATTR},
}

# Attribute vocabularies. Regions and rivers are invented names drawn per world (see entities.py).
OCCUPATIONS = ("miller", "weaver", "ferryman", "beekeeper", "cartographer", "tinker", "glassblower",
               "shepherd", "scribe", "baker", "potter", "boatwright", "lamplighter", "cooper", "thatcher",
               "bellringer", "candlemaker", "fiddler", "tanner", "net mender")
COLOURS = ("grey", "amber", "blue", "green", "white", "black", "copper", "violet", "silver", "russet",
           "golden", "pale pink")
HABITATS = ("marshes", "pine forests", "caves", "high meadows", "river banks", "sea cliffs", "moors",
            "reed beds", "old orchards", "dunes", "birch woods", "salt flats")
DIETS = ("berries", "beetles", "moss", "fish", "seeds", "roots", "moths", "snails", "acorns", "mushrooms")
MATERIALS = ("oak", "iron", "bone", "brass", "ash wood", "copper", "slate", "horn", "willow", "bronze")
USES = ("mending nets", "cutting reeds", "splitting kindling", "carving spoons", "lifting lanterns",
        "sowing seed", "weaving baskets", "tapping barrels", "binding books", "polishing lenses",
        "trimming wicks", "scraping hides")
SMELLS = ("rain", "pine", "wet stone", "honey", "burnt sugar", "moss", "clover", "old paper", "smoke",
          "lavender")
VESSELS = ("glass jars", "clay pots", "tin boxes", "wax-sealed bottles", "oak casks", "linen pouches")
TEXTURES = ("powdery", "oily", "glassy", "brittle", "waxy", "silky", "gritty", "spongy")
BIRTH_YEARS = tuple(str(y) for y in range(1180, 1380))
FOUNDING_YEARS = tuple(str(y) for y in range(500, 1100))

# Fixed attribute domains; "region" and "river" are filled in per world.
ATTRIBUTE_DOMAINS: dict[str, tuple[str, ...]] = {
    "occupation": OCCUPATIONS,
    "birth_year": BIRTH_YEARS,
    "founded": FOUNDING_YEARS,
    "habitat": HABITATS,
    "diet": DIETS,
    "colour": COLOURS,
    "material": MATERIALS,
    "use": USES,
    "smell": SMELLS,
    "vessel": VESSELS,
    "texture": TEXTURES,
}
N_REGIONS = 8
N_RIVERS = 20

# The readable concept vocabulary of span labels; `relation:<fact>` and `attribute:<fact>` use SCHEMA's
# fact names.
BASE_CONCEPTS = (*ENTITY_KINDS, "unknown_entity", "number", "operator", "hazard_step", "chat_role", "template")


def all_concepts() -> list[str]:
    facts = sorted({f for facts in SCHEMA.values() for f in facts})
    attrs = sorted({f for facts in SCHEMA.values() for f, v in facts.items() if v == ATTR})
    return [*BASE_CONCEPTS, *(f"relation:{f}" for f in facts), *(f"attribute:{a}" for a in attrs)]
