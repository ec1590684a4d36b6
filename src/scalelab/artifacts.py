"""Artifacts on disk: a directory with a `meta.json` and a payload, written so a kill loses nothing.

A stage is skipped when its output directory holds a `meta.json` whose config hash and parents match
what the stage would produce now; `meta.json` is written last (atomically), so its presence means
the payload is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from scalelab import __version__
from scalelab.errors import MissingInput

META = "meta.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def model_sha256(model_dir: Path) -> str:
    """The identity of a model's weights: SHA-256 over its weight files' hashes, in name order."""
    model_dir = Path(model_dir)
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise MissingInput(f"{model_dir} holds no weight files (*.safetensors); pass a HF checkpoint folder")
    if len(files) == 1:
        return sha256_file(files[0])
    return hashlib.sha256("".join(f"{p.name}:{sha256_file(p)}\n" for p in files).encode()).hexdigest()


def read_meta(directory: Path) -> dict[str, Any] | None:
    p = Path(directory) / META
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def is_done(directory: Path, kind: str, config_hash: str, parents: list[str] | None = None) -> bool:
    """True when `directory` holds a finished artifact of this kind, config hash and parents."""
    meta = read_meta(directory)
    return (
        meta is not None
        and meta.get("kind") == kind
        and meta.get("config_hash") == config_hash
        and sorted(meta.get("parents", [])) == sorted(parents or [])
    )


def write_meta(directory: Path, kind: str, config: Any, config_hash: str,
               parents: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Mark `directory` as a finished artifact (call after the payload is fully written)."""
    meta = {
        "kind": kind,
        "config": config,
        "config_hash": config_hash,
        "parents": list(parents or []),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "scalelab_version": __version__,
        **extra,
    }
    atomic_write_json(Path(directory) / META, meta)
    return meta
