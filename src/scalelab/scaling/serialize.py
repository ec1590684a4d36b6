"""JSON round-trips for fit results, so a fit made once can be stored and read back by later stages.

Every result dataclass is registered under a `kind` name with `@json_result("...")`; its JSON is a dict
tagged with that kind, nested results included, so `from_json` rebuilds the same objects without a
schema per class. Non-finite floats (a diverged run's NaN loss) are written as the strings "NaN",
"Infinity" and "-Infinity", keeping the file strict JSON that any reader accepts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, TypeVar

T = TypeVar("T")

_REGISTRY: dict[str, type] = {}
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def json_result(kind: str):
    """Class decorator: register a dataclass under `kind` and give it to_json/from_json."""

    def register(cls: type[T]) -> type[T]:
        if kind in _REGISTRY and _REGISTRY[kind] is not cls:
            raise ValueError(f"json kind {kind!r} is already registered to {_REGISTRY[kind].__name__}")
        _REGISTRY[kind] = cls
        cls.KIND = kind  # type: ignore[attr-defined]
        cls.to_dict = to_dict  # type: ignore[attr-defined]
        cls.to_json = to_json  # type: ignore[attr-defined]
        cls.from_json = classmethod(_from_json)  # type: ignore[attr-defined]
        cls.from_dict = classmethod(_from_dict)  # type: ignore[attr-defined]
        return cls

    return register


def encode(obj: Any) -> Any:
    """A JSON-able value: registered dataclasses become kind-tagged dicts, tuples lists, NaN a string."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"kind": obj.KIND}  # type: ignore[attr-defined]
        out.update({f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
        return out
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return encode(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    return obj


def decode(obj: Any) -> Any:
    """Inverse of `encode`: kind-tagged dicts become their classes, lists tuples."""
    if isinstance(obj, dict):
        items = {k: decode(v) for k, v in obj.items()}
        kind = items.pop("kind", None)
        if kind is None:
            return items
        if kind not in _REGISTRY:
            raise ValueError(f"unknown result kind {kind!r} in JSON; known kinds: {', '.join(sorted(_REGISTRY))}")
        return _REGISTRY[kind](**items)
    if isinstance(obj, list):
        return tuple(decode(v) for v in obj)
    if isinstance(obj, str) and obj in _NON_FINITE:
        return _NON_FINITE[obj]
    return obj


def to_dict(self: Any) -> dict[str, Any]:
    return encode(self)


def to_json(self: Any) -> str:
    return json.dumps(encode(self), indent=2, sort_keys=True, allow_nan=False)


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    obj = decode(data)
    if not isinstance(obj, cls):
        raise ValueError(
            f"JSON holds a {type(obj).__name__} (kind {data.get('kind')!r}), not a {cls.__name__}; "
            f"read it with {type(obj).__name__}.from_json"
        )
    return obj


def _from_json(cls: type[T], text: str) -> T:
    return _from_dict(cls, json.loads(text))
