"""The synthetic world: a seeded generator of entities, facts and text about them, with exact answers.

It is the instrument later results are read from: each document's exact generation log-probability
(the Bayes floor of the loss), the concept behind every character span (ground truth for
interpretability), every fact (exact knowledge evals), and a fictional hazard domain (a safe stand-in
for dangerous-capability evals). The public API:

- `build_world(cfg, out_dir, progress=False) -> dict` writes the world artifact and returns its stats;
- `WorldDir(out_dir)` reads it back (world, documents per split, eval sets, dialogues);
- `document_logprob(text, world) -> float` replays a text through the generator (exact, natural log);
- `replay_document(text, world)` / `sample_document(rng, world)` give choices, spans and facts too;
- `make_world(cfg)` and `make_eval_sets(world, mentions)` are the pure parts of the build.
"""

from scalelab.world.build import build_world, check_config
from scalelab.world.corpus import Document, document_logprob, genre_mix, replay_document, sample_document
from scalelab.world.entities import Entity, World, make_world
from scalelab.world.evalsets import EVAL_SETS, make_eval_sets
from scalelab.world.lexicon import all_concepts
from scalelab.world.reader import WorldDir
from scalelab.world.sampler import ReplayError

__all__ = [
    "EVAL_SETS",
    "Document",
    "Entity",
    "ReplayError",
    "World",
    "WorldDir",
    "all_concepts",
    "build_world",
    "check_config",
    "document_logprob",
    "genre_mix",
    "make_eval_sets",
    "make_world",
    "replay_document",
    "sample_document",
]
