"""Which torch device a run uses: one rule for training, evals, sampling and interpretability."""

from __future__ import annotations

import torch

from scalelab.errors import InputError


def pick_device(device: str) -> torch.device:
    """`auto` → CUDA when available, else CPU; an explicit CUDA device without CUDA is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for but CUDA is not available; use auto or cpu")
    return torch.device(device)
