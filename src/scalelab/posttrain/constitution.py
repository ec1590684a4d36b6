"""Constitutions: the written principles that stand in for human harmlessness labels.

A constitution is a YAML file (see `constitutions/default.yaml`):

    name: world-default
    principles:            # each drawn at random for one critique → revision round of SL-CAI
      - name: no_hazard_recipes
        critique: Identify whether the response gives a hazardous recipe.
        revision: Rewrite the response so that it declines.
    comparisons:           # preference questions the feedback model answers in RL-CAI
      - Which of these assistant responses is less harmful?
    traits:                # optional; character training puts them in the teacher's system prompt
      - I am honest about the limits of what I know.

The parser walks YAML's node tree rather than the loaded data, so every error names the file and the
line of the offending entry. `load_constitution` takes a path or the name of a shipped file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from scalelab.errors import InputError, MissingInput

SHIPPED = ("default", "character")
_TOP_KEYS = {"name", "principles", "comparisons", "traits"}
_PRINCIPLE_KEYS = ("name", "critique", "revision")


class ConstitutionError(InputError):
    """A constitution file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Principle:
    name: str
    critique: str  # the critique request shown to the model after its response
    revision: str  # the revision request shown after its critique


@dataclass(frozen=True)
class Constitution:
    name: str
    principles: tuple[Principle, ...]
    comparisons: tuple[str, ...]
    traits: tuple[str, ...] = ()
    source: str = ""

    def draw_principle(self, rng: random.Random) -> Principle:
        return rng.choice(self.principles)

    def draw_comparison(self, rng: random.Random) -> str:
        return rng.choice(self.comparisons)

    def system_prompt(self) -> str:
        """The traits as a teacher's system prompt (character training)."""
        return " ".join(self.traits)


def _err(src: str, node: yaml.Node, msg: str) -> ConstitutionError:
    return ConstitutionError(f"{src}, line {node.start_mark.line + 1}: {msg}")


def _string(src: str, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise _err(src, node, f"{what} must be a non-empty text")
    return str(node.value).strip()


def _strings(src: str, node: yaml.Node, what: str) -> tuple[str, ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise _err(src, node, f"{what} must be a non-empty list of texts")
    return tuple(_string(src, item, f"each entry of {what}") for item in node.value)


def _mapping(src: str, node: yaml.Node, what: str, allowed: set[str] | tuple[str, ...]) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise _err(src, node, f"{what} must be a mapping with keys {', '.join(sorted(allowed))}")
    out: dict[str, yaml.Node] = {}
    for key, value in node.value:
        k = str(key.value)
        if k not in allowed:
            raise _err(src, key, f"unknown key {k!r} in {what}; valid keys: {', '.join(sorted(allowed))}")
        if k in out:
            raise _err(src, key, f"key {k!r} appears twice in {what}")
        out[k] = value
    return out


def parse_constitution(text: str, source: str = "<constitution>") -> Constitution:
    """Parse constitution YAML; errors name `source` and the line."""
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else "?"
        raise ConstitutionError(f"{source}, line {line}: not valid YAML: {err.problem or err}") from err
    if root is None:
        raise ConstitutionError(f"{source}, line 1: the file is empty; it needs principles and comparisons")
    top = _mapping(source, root, "the constitution", _TOP_KEYS)
    for required in ("principles", "comparisons"):
        if required not in top:
            raise _err(source, root, f"missing {required!r}; a constitution needs principles and comparisons")
    plist = top["principles"]
    if not isinstance(plist, yaml.SequenceNode) or not plist.value:
        raise _err(source, plist, "'principles' must be a non-empty list")
    principles = []
    for node in plist.value:
        fields = _mapping(source, node, "a principle", _PRINCIPLE_KEYS)
        missing = [k for k in _PRINCIPLE_KEYS if k not in fields]
        if missing:
            raise _err(source, node, f"principle is missing {', '.join(missing)}; each needs name, critique and "
                                     "revision")
        principles.append(Principle(*(_string(source, fields[k], k) for k in _PRINCIPLE_KEYS)))
    names = [p.name for p in principles]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _err(source, plist, f"principle names must be unique; repeated: {', '.join(dup)}")
    return Constitution(
        name=_string(source, top["name"], "name") if "name" in top else Path(source).stem,
        principles=tuple(principles),
        comparisons=_strings(source, top["comparisons"], "comparisons"),
        traits=_strings(source, top["traits"], "traits") if "traits" in top else (),
        source=source,
    )


def load_constitution(path_or_name: str | Path) -> Constitution:
    """Load a constitution file, or a shipped one by name ("default", "character")."""
    if str(path_or_name) in SHIPPED:
        ref = resources.files("scalelab.posttrain") / "constitutions" / f"{path_or_name}.yaml"
        return parse_constitution(ref.read_text(encoding="utf-8"), f"{path_or_name}.yaml")
    path = Path(path_or_name)
    if not path.is_file():
        raise MissingInput(f"constitution {path} not found; pass a YAML file or one of: {', '.join(SHIPPED)}")
    return parse_constitution(path.read_text(encoding="utf-8"), str(path))
