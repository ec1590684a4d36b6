"""The compile cache folder: the user's choice wins, then scalelab's variable, then the user cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

from scalelab.model.compiled import compile_cache_dir, compile_module


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("SCALELAB_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert compile_cache_dir() == tmp_path / ".cache" / "scalelab" / "inductor"
    monkeypatch.setenv("SCALELAB_COMPILE_CACHE", str(tmp_path / "mine"))
    assert compile_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what inductor sets itself: no choice
    assert compile_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "theirs"))
    assert compile_cache_dir() == tmp_path / "theirs"


def test_compile_module_points_inductor_at_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("SCALELAB_COMPILE_CACHE", str(tmp_path / "inductor"))
    module = torch.nn.Linear(2, 2)
    compiled = compile_module(module)  # lazy: nothing is compiled until the first call
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    assert (tmp_path / "inductor").is_dir()
    assert compiled is not module and compiled._orig_mod is module
