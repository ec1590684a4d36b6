"""The Responsible Scaling Policy as a file: AI Safety Levels, capability thresholds, required safeguards.

A policy is a YAML file (the shipped one is `policies/default.yaml`, loaded by the name "default") with
five parts, mirroring the structure of Anthropic's RSP:

- `levels`: ASL-1 … ASL-5, each with a description; `baseline_asl` is the level every model starts at;
- `thresholds`: capability thresholds, each naming a capability `eval` (one of the RSP evals of
  `scalelab.evals.capability.catalogue.EVAL_NAMES`), its `metric`, the metric's `direction` (below), a `red`
  line (the capability threshold itself), a `yellow` line short of it (the safety buffer: scores there call
  for a closer look before the next model), the ASL whose safeguards crossing it `requires`, and the scaling
  stage's `forecast` key whose fit predicts this capability at more compute (or null when no scaling eval
  tracks it);
- `safeguards`: for each ASL, the safeguards it requires (names from `SAFEGUARD_NAMES`) and their
  measurable pass criteria, `{min_<metric>: bound}` or `{max_<metric>: bound}` on a metric the safeguard
  reports (`scalelab.rsp.safeguards.BOUNDS`); each level lists its
  whole set (no inheritance, so a reader sees a level's requirements in one place), and a level left out
  has no defined safeguards, so a model that needs it can never pass the gate;
- `cadence`: a comprehensive assessment is due every `effective_compute_multiple` (4×) of effective
  training compute since the last assessed model;
- `elicitations`: the elicitations an assessment must run (a motivated adversary's toolbox).

A threshold's `direction` says which way its metric means more capability: `higher` (the default: an
accuracy, a success rate; the yellow line sits below the red one, 0 <= yellow <= red <= 1) or `lower` (an
error rate, a loss-like score; the yellow line sits above the red one, 0 <= red <= yellow <= 1). Everything
downstream follows it: the strongest elicitation is the one furthest in that direction, a score crosses
when it reaches the red line from the safe side, the margin to the red line is positive while short of it,
and the forecast's outlook reads the interval's end toward more capability. Parsing checks every key and value and
raises `PolicyError` naming the offending key and what is allowed; a policy naming an eval, elicitation
or safeguard that does not exist lists the ones that do. The policy's identity is the SHA-256 of the
file's bytes, recorded with every assessment so a determination names exactly the text it was made under.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from scalelab.errors import InputError, MissingInput
from scalelab.evals.capability.catalogue import AGENT_EVALS, ELICITATIONS, EVAL_NAMES
from scalelab.rsp.safeguards.catalogue import BOUNDS

SHIPPED = ("default",)
TOP_KEYS = ("name", "version", "description", "baseline_asl", "levels", "thresholds", "safeguards", "cadence",
            "elicitations")
THRESHOLD_KEYS = ("id", "name", "description", "eval", "metric", "direction", "red", "yellow", "requires",
                  "forecast")
# Which way a threshold's metric means more capability.
HIGHER, LOWER = "higher", "lower"
DIRECTIONS = (HIGHER, LOWER)
ASL_RE = re.compile(r"^ASL-([1-9])$")
BOUND_RE = re.compile(r"^(min|max)_([a-z0-9_]+)$")


class PolicyError(InputError):
    """A policy file is malformed or names something that does not exist; the message names the key."""


@dataclass(frozen=True)
class Level:
    asl: int
    description: str

    @property
    def name(self) -> str:
        return asl_name(self.asl)


@dataclass(frozen=True)
class Threshold:
    id: str
    name: str
    description: str
    eval: str
    metric: str
    red: float
    yellow: float
    requires: int  # the ASL whose safeguards a model that crossed this threshold needs
    forecast: str | None  # the scaling stage's eval name predicting this capability (None: no forecast)
    direction: str = HIGHER  # HIGHER or LOWER: which way the metric means more capability


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    description: str
    baseline_asl: int
    levels: dict[int, Level]
    thresholds: tuple[Threshold, ...]
    safeguards: dict[int, dict[str, dict[str, float]]]  # {asl: {safeguard: {min_x|max_x: bound}}}
    compute_multiple: float
    elicitations: tuple[str, ...]
    source: str
    sha256: str

    @property
    def evals(self) -> tuple[str, ...]:
        """The model evals an assessment runs through Inspect: those the thresholds name, in first-use order
        (agent evals, `AGENT_EVALS`, are measured by their own stage and assessed apart)."""
        return tuple(dict.fromkeys(t.eval for t in self.thresholds if t.eval not in AGENT_EVALS))

    @property
    def agent_thresholds(self) -> tuple[Threshold, ...]:
        """Thresholds on an agent system's capability (`AGENT_EVALS`), e.g. computer-use autonomy."""
        return tuple(t for t in self.thresholds if t.eval in AGENT_EVALS)

    def required_safeguards(self, asl: int) -> dict[str, dict[str, float]] | None:
        """The safeguards (with pass criteria) a model determined at `asl` needs; None when the policy
        defines none for that level, a requirement that can never be met (e.g. ASL-5 in the default)."""
        return self.safeguards.get(asl)

    def threshold(self, threshold_id: str) -> Threshold:
        for t in self.thresholds:
            if t.id == threshold_id:
                return t
        raise PolicyError(f"policy {self.name!r} has no threshold {threshold_id!r}; it has: "
                          f"{', '.join(t.id for t in self.thresholds)}")


def asl_name(asl: int) -> str:
    return f"ASL-{asl}"


def load_policy(path_or_name: str | Path, *, evals: Sequence[str] | None = None,
                elicitations: Sequence[str] | None = None,
                safeguards: Mapping[str, Sequence[str]] | None = None) -> Policy:
    """Load a policy YAML file, or a shipped one by name ("default").

    `evals` and `elicitations` are the names the policy may use and `safeguards` maps each safeguard to the
    metrics it reports; None takes them from the RSP eval runner and the safeguards package (`BOUNDS`).
    """
    if str(path_or_name) in SHIPPED:
        ref = resources.files("scalelab.rsp") / "policies" / f"{path_or_name}.yaml"
        raw, source = ref.read_bytes(), f"{path_or_name} (scalelab/rsp/policies/{path_or_name}.yaml)"
    else:
        path = Path(path_or_name)
        if not path.is_file():
            raise MissingInput(f"policy file {path} not found; pass a YAML file or a shipped policy: "
                                    f"{', '.join(SHIPPED)}")
        raw, source = path.read_bytes(), str(path)
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise PolicyError(f"policy {source} is not valid YAML: {err}") from err
    return parse_policy(data, source=source, sha256=hashlib.sha256(raw).hexdigest(), evals=evals,
                        elicitations=elicitations, safeguards=safeguards)


def parse_policy(data: Any, *, source: str = "<policy>", sha256: str = "", evals: Sequence[str] | None = None,
                 elicitations: Sequence[str] | None = None,
                 safeguards: Mapping[str, Sequence[str]] | None = None) -> Policy:
    """A `Policy` from the YAML's mapping; every problem is a `PolicyError` naming its key."""
    if not isinstance(data, Mapping):
        raise PolicyError(f"policy {source} must be a mapping with keys {', '.join(TOP_KEYS)}; "
                          f"got {type(data).__name__}")
    _no_unknown(data, TOP_KEYS, "", source)
    # `evals` names the model evals a caller allows; agent evals are measured by their own stage, always known
    evals = (*evals, *AGENT_EVALS) if evals is not None else _known("evals")
    elicitations = tuple(elicitations) if elicitations is not None else _known("elicitations")
    if safeguards is None:
        safeguards = BOUNDS
    name = _str(_need(data, "name", source), "name", source)
    levels = _levels(_need(data, "levels", source), source)
    baseline = _asl(_need(data, "baseline_asl", source), "baseline_asl", source, levels)
    thresholds = _thresholds(_need(data, "thresholds", source), source, evals, levels)
    guards = _safeguards(_need(data, "safeguards", source), source, safeguards, levels)
    for t in thresholds:
        if t.requires <= baseline:
            raise PolicyError(f"{source}: thresholds[{t.id}].requires={asl_name(t.requires)} is not above "
                              f"baseline_asl={asl_name(baseline)}; a threshold must raise the level it requires")
    cadence = _need(data, "cadence", source)
    if not isinstance(cadence, Mapping):
        raise PolicyError(f"{source}: cadence must be a mapping like {{effective_compute_multiple: 4}}")
    _no_unknown(cadence, ("effective_compute_multiple", "months"), "cadence.", source)
    multiple = _num(_need(cadence, "effective_compute_multiple", source, "cadence."),
                    "cadence.effective_compute_multiple", source)
    if multiple <= 1:
        raise PolicyError(f"{source}: cadence.effective_compute_multiple={multiple} must be > 1 (e.g. 4)")
    elic = data.get("elicitations", ["zero_shot"])
    if not isinstance(elic, list) or not elic or not all(isinstance(e, str) for e in elic):
        raise PolicyError(f"{source}: elicitations must be a non-empty list of names from: {', '.join(elicitations)}")
    for e in elic:
        if e not in elicitations:
            raise PolicyError(f"{source}: elicitations names unknown elicitation {e!r}; known elicitations: "
                              f"{', '.join(elicitations)}")
    return Policy(name=name, version=str(data.get("version", "")), description=str(data.get("description", "")),
                  baseline_asl=baseline, levels=levels, thresholds=thresholds, safeguards=guards,
                  compute_multiple=multiple, elicitations=tuple(elic), source=source, sha256=sha256)


def _known(kind: str) -> tuple[str, ...]:
    """The names a policy may use, from the catalogue of capability evals."""
    return (*EVAL_NAMES, *AGENT_EVALS) if kind == "evals" else tuple(ELICITATIONS)


def _need(data: Mapping, key: str, source: str, prefix: str = "") -> Any:
    if key not in data or data[key] is None:
        raise PolicyError(f"{source}: missing required key {prefix}{key}")
    return data[key]


def _no_unknown(data: Mapping, allowed: Sequence[str], prefix: str, source: str) -> None:
    for key in data:
        if key not in allowed:
            raise PolicyError(f"{source}: unknown key {prefix}{key}; allowed keys: {', '.join(allowed)}")


def _str(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{source}: {key} must be a non-empty string, got {value!r}")
    return value


def _num(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{source}: {key} must be a number, got {value!r}")
    return float(value)


def _asl(value: Any, key: str, source: str, levels: Mapping[int, Level] | None = None) -> int:
    m = ASL_RE.match(str(value))
    if not m:
        raise PolicyError(f"{source}: {key}={value!r} is not an AI Safety Level; write it as ASL-1 … ASL-5")
    asl = int(m.group(1))
    if levels is not None and asl not in levels:
        raise PolicyError(f"{source}: {key}={value!r} is not one of the policy's levels: "
                          f"{', '.join(asl_name(a) for a in sorted(levels))}")
    return asl


def _levels(data: Any, source: str) -> dict[int, Level]:
    if not isinstance(data, Mapping) or not data:
        raise PolicyError(f"{source}: levels must be a mapping from ASL-1 … ASL-5 to {{description: ...}}")
    levels = {}
    for key, body in data.items():
        asl = _asl(key, f"levels.{key}", source)
        if not isinstance(body, Mapping):
            raise PolicyError(f"{source}: levels.{key} must be a mapping with a description")
        _no_unknown(body, ("description",), f"levels.{key}.", source)
        levels[asl] = Level(asl, _str(_need(body, "description", source, f"levels.{key}."),
                                      f"levels.{key}.description", source))
    missing = [asl_name(a) for a in range(1, max(levels) + 1) if a not in levels]
    if missing:
        raise PolicyError(f"{source}: levels skips {', '.join(missing)}; list every level up to the highest")
    return dict(sorted(levels.items()))


def _thresholds(data: Any, source: str, evals: Sequence[str], levels: Mapping[int, Level]) -> tuple[Threshold, ...]:
    if not isinstance(data, list) or not data:
        raise PolicyError(f"{source}: thresholds must be a non-empty list of mappings with keys "
                          f"{', '.join(THRESHOLD_KEYS)}")
    out: list[Threshold] = []
    for i, body in enumerate(data):
        if not isinstance(body, Mapping):
            raise PolicyError(f"{source}: thresholds[{i}] must be a mapping with keys {', '.join(THRESHOLD_KEYS)}")
        tid = _str(_need(body, "id", source, f"thresholds[{i}]."), f"thresholds[{i}].id", source)
        at = f"thresholds[{tid}]."
        _no_unknown(body, THRESHOLD_KEYS, at, source)
        if any(t.id == tid for t in out):
            raise PolicyError(f"{source}: thresholds has two entries with id {tid!r}; ids must be unique")
        ev = _str(_need(body, "eval", source, at), f"{at}eval", source)
        if ev not in evals:
            raise PolicyError(f"{source}: {at}eval names unknown eval {ev!r}; known evals: {', '.join(evals)}")
        direction = body.get("direction", HIGHER)
        if direction not in DIRECTIONS:
            raise PolicyError(f"{source}: {at}direction={direction!r} must be one of {', '.join(DIRECTIONS)} "
                              "(which way the metric means more capability; default higher)")
        red = _num(_need(body, "red", source, at), f"{at}red", source)
        yellow = _num(_need(body, "yellow", source, at), f"{at}yellow", source)
        if direction == HIGHER and not 0.0 <= yellow <= red <= 1.0:
            raise PolicyError(f"{source}: {at}yellow={yellow} and {at}red={red} must satisfy "
                              "0 <= yellow <= red <= 1 (higher is more capable: the safety buffer sits below the "
                              "red line)")
        if direction == LOWER and not 0.0 <= red <= yellow <= 1.0:
            raise PolicyError(f"{source}: {at}yellow={yellow} and {at}red={red} must satisfy "
                              "0 <= red <= yellow <= 1 (lower is more capable: the safety buffer sits above the "
                              "red line)")
        forecast = body.get("forecast")
        if forecast is not None and not isinstance(forecast, str):
            raise PolicyError(f"{source}: {at}forecast must be a scaling eval name (e.g. hazard_knowledge) or null")
        out.append(Threshold(
            id=tid, name=str(body.get("name", tid)), description=str(body.get("description", "")), eval=ev,
            metric=_str(_need(body, "metric", source, at), f"{at}metric", source), red=red, yellow=yellow,
            requires=_asl(_need(body, "requires", source, at), f"{at}requires", source, levels), forecast=forecast,
            direction=direction))
    return tuple(out)


def _safeguards(data: Any, source: str, names: Mapping[str, Sequence[str]],
                levels: Mapping[int, Level]) -> dict[int, dict[str, dict[str, float]]]:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{source}: safeguards must map each ASL to {{safeguard: {{min_x|max_x: bound}}}}")
    out: dict[int, dict[str, dict[str, float]]] = {}
    for key, body in data.items():
        asl = _asl(key, f"safeguards.{key}", source, levels)
        body = body or {}
        if not isinstance(body, Mapping):
            raise PolicyError(f"{source}: safeguards.{key} must map safeguard names to their pass criteria")
        level: dict[str, dict[str, float]] = {}
        for name, criteria in body.items():
            at = f"safeguards.{key}.{name}"
            if name not in names:
                raise PolicyError(f"{source}: {at} names unknown safeguard {name!r}; known safeguards: "
                                  f"{', '.join(names)}")
            if not isinstance(criteria, Mapping) or not criteria:
                raise PolicyError(f"{source}: {at} must give at least one pass criterion, e.g. "
                                  "{max_attack_success_rate: 0.05} or {min_recall: 0.9}")
            bounds = {}
            valid = [f"{side}_{m}" for m in names[name] for side in ("min", "max")]
            for bound, value in criteria.items():
                m = BOUND_RE.match(str(bound))
                if not m or m.group(2) not in names[name]:
                    raise PolicyError(f"{source}: {at}.{bound} is not a pass criterion of {name}; "
                                      f"valid criteria: {', '.join(valid)}")
                bounds[str(bound)] = _num(value, f"{at}.{bound}", source)
            level[str(name)] = bounds
        out[asl] = level
    return dict(sorted(out.items()))
