"""`torch.compile` with its caches kept on the host, so a shape's compile is paid once per host, not per run.

Inductor keeps compiled graphs in an on-disk cache (the FX graph cache and AOTAutograd's cache, both on by default
in torch 2.13), but under the system's temp folder, which is wiped between boots and on many clusters between
jobs. scalelab points it at `~/.cache/scalelab/inductor` (or `$SCALELAB_COMPILE_CACHE`) unless the user already
chose a folder with `TORCHINDUCTOR_CACHE_DIR`: the second run of a model of the same shapes on the same host then
skips code generation and pays only the graph capture (measured in BENCHMARKS.md, "Levers measured").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

M = TypeVar("M", bound=nn.Module)


def compile_cache_dir() -> Path:
    """Where compiled graphs are kept: `$TORCHINDUCTOR_CACHE_DIR` when the user chose it, else
    `$SCALELAB_COMPILE_CACHE`, else the user's cache folder.

    Inductor writes its own default (the temp folder) into `TORCHINDUCTOR_CACHE_DIR` the first time anything asks
    for its cache folder, which some imports do; a value equal to that default is therefore not taken as a choice.
    """
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen and os.path.abspath(chosen) != os.path.abspath(default_cache_dir()):
        return Path(chosen)
    if os.environ.get("SCALELAB_COMPILE_CACHE"):
        return Path(os.environ["SCALELAB_COMPILE_CACHE"])
    return Path.home() / ".cache" / "scalelab" / "inductor"


def compile_module(module: M) -> M:
    """`torch.compile(module)` with inductor's on-disk caches in `compile_cache_dir()`.

    The folder is set through the environment because inductor reads it there at each cache lookup; a folder
    that cannot be created leaves inductor's own default in place (compiling still works, uncached across boots).
    """
    folder = compile_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    return torch.compile(module)  # type: ignore[return-value]
