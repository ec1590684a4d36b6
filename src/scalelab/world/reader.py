"""One reader of a built world folder: its world, its documents, its eval sets and its dialogues.

`build_world` writes the files below; every stage that needs them reads them through `WorldDir`, so the
format is spelled once and a missing or malformed file is reported the same way everywhere::

    world.json                entities, facts, recipes, domains, unknown names, per-fact train mentions
    train.jsonl / val.jsonl   {"id", "genre", "text", "logprob", "spans"} per document
    evals/<set>.jsonl         the labelled eval sets (see `scalelab.world.evalsets`)
    sft.jsonl                 {"messages", "kind"} chat dialogues for supervised fine-tuning
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import InputError, MissingInput
from scalelab.world.entities import World

SPLITS = ("train", "val")
WORLD_JSON = "world.json"
SFT_FILE = "sft.jsonl"
EVALS_DIR = "evals"


class WorldFormatError(InputError):
    """A world file is malformed; the message names the file (and line) and says to rebuild the world."""


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise WorldFormatError(f"{path} line {lineno} is not valid JSON ({err.msg}); rebuild the world "
                                       "(`scalelab world`)") from err


@functools.lru_cache(maxsize=4)  # one parse per world file version, however many readers ask
def _world(path: Path, _mtime_ns: int) -> World:
    return World.from_json(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class WorldDir:
    """A built world folder (see the module docstring). Constructing it checks nothing; each reader
    raises `MissingInput` naming the file and the command that builds it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @staticmethod
    def is_world(path: Path | str) -> bool:
        """True for a folder holding a world's train and val documents."""
        path = Path(path)
        return path.is_dir() and all((path / f"{s}.jsonl").is_file() for s in SPLITS)

    def _need(self, path: Path) -> Path:
        if not path.exists():
            raise MissingInput(f"{path} does not exist; build the world first (`scalelab world --out {self.path}`) "
                               "or pass a world directory")
        return path

    @property
    def world_json(self) -> Path:
        return self.path / WORLD_JSON

    def world(self) -> World:
        """Entities, facts, recipes and the config the world was built from."""
        path = self._need(self.world_json).resolve()
        return _world(path, path.stat().st_mtime_ns)

    def raw(self) -> dict[str, Any]:
        """world.json as stored (with the per-fact train mentions the `World` object does not keep)."""
        return json.loads(self._need(self.world_json).read_text(encoding="utf-8"))

    def split_file(self, split: str) -> Path:
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        return self.path / f"{split}.jsonl"

    def records(self, split: str) -> Iterator[dict[str, Any]]:
        """The documents of one split as records, each checked to carry `text` and a numeric `logprob`."""
        path = self._need(self.split_file(split))
        n = 0
        for lineno, obj in _jsonl(path):
            if not isinstance(obj.get("text"), str):
                raise WorldFormatError(f"{path} line {lineno} has no string \"text\"; rebuild the world")
            lp = obj.get("logprob")
            if isinstance(lp, bool) or not isinstance(lp, int | float):
                raise WorldFormatError(f"{path} line {lineno} has no numeric \"logprob\"; rebuild the world")
            n += 1
            yield obj
        if n == 0:
            raise WorldFormatError(f"{path} holds no documents; rebuild the world")

    def texts(self, split: str) -> Iterator[str]:
        return (r["text"] for r in self.records(split))

    @property
    def evals_dir(self) -> Path:
        return self.path / EVALS_DIR

    def eval_sets(self) -> list[str]:
        return sorted(p.stem for p in self.evals_dir.glob("*.jsonl"))

    def eval_set(self, name: str, max_items: int | None = None) -> list[dict[str, Any]]:
        """The first `max_items` items of a labelled eval set (all when None or 0)."""
        path = self.evals_dir / f"{name}.jsonl"
        if not path.is_file():
            raise MissingInput(f"eval set {path} not found; sets in {self.path}: "
                               f"{', '.join(self.eval_sets()) or 'none'} (rebuild the world for new sets)")
        items = [obj for _, obj in _jsonl(path)]
        return items[:max_items] if max_items else items

    def dialogues(self) -> list[dict[str, Any]]:
        """The supervised fine-tuning dialogues ({"messages", "kind"})."""
        return [obj for _, obj in _jsonl(self._need(self.path / SFT_FILE))]
