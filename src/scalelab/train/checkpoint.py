"""Training state on disk: written atomically, read back exactly, never unpickled.

Layout of `out_dir/ckpt/`:

    LATEST                 the name of the newest complete checkpoint (written last, atomically)
    step_000200/
      model.safetensors    weights (HF key names; a tied lm_head stored once)
      optimizer.safetensors AdamW moments and step counts, keyed "{param index}.{name}"
      rng.safetensors      torch (and CUDA) generator states
      state.json           step, loader position, python/numpy RNG states, optimizer hyperparameters,
                           extra counters, and the sha256 of each .safetensors file

A checkpoint directory is complete before `LATEST` names it, and the previous one is deleted only
after, so a kill at any moment leaves a loadable checkpoint. On load the hashes are checked: a
truncated or corrupt file is a `CheckpointError` that names it, never a silent fresh start.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from scalelab.artifacts import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file
from scalelab.errors import UserError

LATEST = "LATEST"
_TENSOR_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint exists but cannot be used; the message names the file and what to do."""


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return tensors, {"python": [py_version, list(py_state), py_gauss],
                     "numpy": [kind, keys.tolist(), pos, has_gauss, gauss]}


def _set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    py_version, py_state, py_gauss = plain["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    kind, keys, pos, has_gauss, gauss = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))


def _optimizer_split(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": v.detach().cpu().contiguous()
               for i, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    return tensors, {"param_groups": sd["param_groups"]}


def _optimizer_join(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def _model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tied = getattr(getattr(model, "cfg", None), "tie_embeddings", False)
    if tied:
        state.pop("lm_head.weight", None)
    return state


def save_checkpoint(ckpt_dir: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    loader_state: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write a complete checkpoint for `step`, point LATEST at it, then drop older ones."""
    ckpt_dir = Path(ckpt_dir)
    name = f"step_{step:07d}"
    target = ckpt_dir / name
    if target.exists():  # a leftover from a run killed mid-write: LATEST never named it
        shutil.rmtree(target)
    opt_tensors, opt_plain = _optimizer_split(optimizer)
    rng_tensors, rng_plain = _rng_state()
    blobs = {"model.safetensors": _model_state(model), "optimizer.safetensors": opt_tensors,
             "rng.safetensors": rng_tensors}
    hashes = {}
    for fname, tensors in blobs.items():
        atomic_write_bytes(target / fname, safetensors_bytes(tensors))
        hashes[fname] = sha256_file(target / fname)
    atomic_write_json(target / "state.json", {
        "step": step, "loader": loader_state, "rng": rng_plain, "optimizer": opt_plain,
        "extra": extra or {}, "sha256": hashes,
    })
    atomic_write_text(ckpt_dir / LATEST, name + "\n")
    for old in ckpt_dir.glob("step_*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint LATEST points to, None when there is none; a dangling pointer is an error."""
    pointer = Path(ckpt_dir) / LATEST
    if not pointer.is_file():
        return None
    target = Path(ckpt_dir) / pointer.read_text(encoding="utf-8").strip()
    if not (target / "state.json").is_file():
        raise CheckpointError(f"{pointer} names {target.name}, which has no state.json; the checkpoint is "
                              f"damaged: delete {ckpt_dir} to start afresh or pass resume=False")
    return target


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG states from checkpoint dir `path`; return state.json's content."""
    path = Path(path)
    state_file = path / "state.json"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint file {state_file} is unreadable ({err}); delete {path.parent} "
                              "to start afresh or pass resume=False") from err
    loaded: dict[str, dict[str, torch.Tensor]] = {}
    for fname in _TENSOR_FILES:
        f = path / fname
        expected = state.get("sha256", {}).get(fname)
        if not f.is_file() or expected is None or sha256_file(f) != expected:
            raise CheckpointError(f"checkpoint file {f} is missing, truncated or corrupt (its sha256 does not "
                                  f"match state.json); delete {path.parent} or pass resume=False")
        try:
            loaded[fname] = load_file(f)
        except SafetensorError as err:
            raise CheckpointError(f"checkpoint file {f} cannot be read: {err}") from err
    weights = loaded["model.safetensors"]
    if getattr(getattr(model, "cfg", None), "tie_embeddings", False):
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    try:
        model.load_state_dict(weights, strict=True)
        optimizer.load_state_dict(_optimizer_join(loaded["optimizer.safetensors"], state["optimizer"]))
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit this model/optimizer ({err}); resume with the "
                              "config it was written with, or pass resume=False") from err
    _set_rng_state(loaded["rng.safetensors"], state["rng"])
    return state
