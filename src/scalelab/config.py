"""Configs from the command line and YAML files: typed dataclasses set by dotted keys, and their hashes.

Every stage's config is a small dataclass that lives beside the stage's code (`world.config.WorldConfig`,
`interp.config.InterpConfig`, ...); `scalelab.presets.RunConfig` gathers them, one section each. This module
is the machinery they share: `set_key` sets any field by its dotted name (`train.lr=3e-3`,
`interp.sae.k=16`), turning a CLI string or YAML scalar into the field's declared type; `read_yaml` reads a
`--config` file, naming the file and line of a syntax error; `config_hash` is the skip key of a stage; and
`field_docs` reads the docstring written under each field, so `scalelab config` can show what a key means.
An unknown key or a value of the wrong type is a `ConfigError` that lists the valid keys or says what type
was expected.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import itertools
import json
import textwrap
import typing
from pathlib import Path
from typing import Any

import yaml

from scalelab.errors import InputError


class ConfigError(InputError):
    """A user-supplied preset name, key or value is invalid; the message says how to fix it."""


def _field_types(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Turn a CLI string or YAML scalar into the field's declared type, or say what was expected."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    try:
        if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
                return None
            inner = next(a for a in args if a is not type(None))
            return _coerce(value, inner, key)
        if origin is list:
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
            return [_coerce(v, args[0], key) for v in value]
        if origin is tuple:
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.strip().startswith(("[", "(")) else value.split(",")
            if isinstance(value, str) or not isinstance(value, list | tuple):
                raise TypeError
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], key) for v in value)
            if len(value) != len(args):
                raise TypeError
            return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
        if origin is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, dict):
                raise TypeError
            return {str(k): _coerce(v, args[1], key) for k, v in value.items()}
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise TypeError
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise TypeError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}={value!r} is not a valid {getattr(tp, '__name__', tp)}") from err
    return value


def set_key(cfg: Any, dotted: str, value: Any) -> None:
    """Set `section.field` (or a top-level field) on cfg; unknown keys list the valid ones."""
    parts = dotted.split(".")
    obj: Any = cfg
    for i, part in enumerate(parts):
        types = _field_types(obj)
        if part not in types:
            prefix = ".".join(parts[:i])
            valid = ", ".join(f"{prefix + '.' if prefix else ''}{k}" for k in types)
            near = _nested_keys(obj, part, prefix)
            hint = f"; did you mean {' or '.join(near)}? All" if near else ";"
            raise ConfigError(f"unknown config key {dotted!r}{hint} valid keys here: {valid}")
        if i == len(parts) - 1:
            current = getattr(obj, part)
            if dataclasses.is_dataclass(current):
                if not isinstance(value, dict):
                    raise ConfigError(f"{dotted} is a section; give a mapping or set {dotted}.<field>")
                for k, v in value.items():
                    set_key(cfg, f"{dotted}.{k}", v)
            else:
                setattr(obj, part, _coerce(value, types[part], dotted))
        else:
            obj = getattr(obj, part)
            if not dataclasses.is_dataclass(obj):
                raise ConfigError(f"{'.'.join(parts[: i + 1])} is not a section; cannot set {dotted}")


def _nested_keys(obj: Any, name: str, prefix: str) -> list[str]:
    """The dotted keys of fields called `name` one section below `obj` (an old flat key's new home)."""
    out = []
    for f in dataclasses.fields(obj):
        sub = getattr(obj, f.name)
        if dataclasses.is_dataclass(sub) and name in {g.name for g in dataclasses.fields(sub)}:
            out.append(f"{prefix + '.' if prefix else ''}{f.name}.{name}")
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML config file as a mapping; a missing file, a syntax error (with its line) or a non-mapping is a
    `ConfigError` naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass a YAML file of config keys to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config file {path}{where} is not valid YAML ({problem}); fix the syntax there — keys "
                          "are nested mappings such as `train:` then `  lr: 0.001`") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


def apply_overrides(cfg: Any, overrides: list[str] | None = None, data: dict[str, Any] | None = None) -> Any:
    """Set a mapping of (nested) keys (a YAML file's), then `key=value` strings, on `cfg`; returns it."""
    for k, v in (data or {}).items():
        set_key(cfg, k, v)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. train.lr=1e-3)")
        k, v = item.split("=", 1)
        set_key(cfg, k.strip(), yaml.safe_load(v) if v.strip() else v)
    return cfg


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def config_hash(*parts: Any) -> str:
    """A short stable hash of configs (dataclasses or JSON-able values): the skip key of a stage."""
    blob = json.dumps(
        [dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p for p in parts],
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def field_docs(cls: type) -> dict[str, str]:
    """{field: its docstring} of a dataclass, read from the string literal written under each field."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def describe(cfg: Any, docs: bool = True, indent: int = 0) -> str:
    """`cfg` as YAML, each field followed by its docstring as a comment (what `scalelab config` prints)."""
    notes = field_docs(type(cfg)) if docs else {}
    lines = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        pad = "  " * indent
        comment = f"  # {notes[f.name]}" if f.name in notes else ""
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:{comment}")
            lines.append(describe(value, docs, indent + 1))
        else:
            shown = yaml.safe_dump(list(value) if isinstance(value, tuple) else value, default_flow_style=True,
                                   width=10**6).strip().removesuffix("...").strip()
            lines.append(f"{pad}{f.name}: {shown}{comment}")
    return "\n".join(lines)
