"""Default text and world for the `interp` commands: those of the run a model was trained in.

`scalelab interp sae-scaling --model M --site S` and `scalelab interp circuit --model M --prompt ...` are meant to
work on a run's model as they are. A model inside a run (`RUN/models/d4/final`) has its world beside it, and
the text it was trained on is that world's, or, for a run on a real corpus, the sample the `interp` stage writes
into `RUN/interp/text/` (the same text the stage's own studies read). A model outside any run has no default;
the error names the flag to pass instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from scalelab.errors import InputError
from scalelab.layout import RunLayout


def _run(model: Path, flag: str) -> RunLayout:
    layout = RunLayout.of(model)
    if layout is None:
        raise InputError(f"{model} is not inside a scalelab run (no world with eval sets above it), so there is "
                         f"no default; pass {flag}")
    return layout


def run_world(model: Path | str, flag: str = "--world") -> Path:
    """The world directory of the run `model` belongs to."""
    return _run(Path(model), flag).world


def run_train_text(model: Path | str, flag: str = "--text") -> Path:
    """The training text of the run `model` belongs to: the world's `train.jsonl`, or on a real corpus the
    `interp` stage's sample of it."""
    layout = _run(Path(model), flag)
    corpus = "world"
    if layout.config.is_file():
        corpus = json.loads(layout.config.read_text("utf-8")).get("corpus", "world")
    if corpus == "world":
        return layout.world / "train.jsonl"
    sample = layout.interp_study("text") / "train.jsonl"
    if not sample.is_file():
        raise InputError(f"the run at {layout.root} trained on corpus {corpus!r}, whose sample {sample} is written "
                         f"by its interp stage and is not there yet; pass {flag}")
    return sample
