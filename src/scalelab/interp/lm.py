"""Open any HF causal LM folder (a scalelab checkpoint, an imported SmolLM2, another family) for interp.

Llama folders load into scalelab's own `Llama` (`model.hf.load_model`), which is faster on a CPU than
transformers' generic model; any other causal LM loads with `AutoModelForCausalLM`. A folder that is
not a causal LM is refused with a message naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn


def load_lm(path: Path | str, device: str = "cpu") -> tuple[nn.Module, Any]:
    """(model in eval mode, tokenizer) for a HF causal LM folder."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not a HF model folder (no config.json); pass a checkpoint folder "
                                "such as OUT/models/d4/final or one written by `scalelab import-gguf`")
    try:
        hf_cfg = json.loads(cfg_file.read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{cfg_file} is not valid JSON: {err}") from err
    archs = hf_cfg.get("architectures") or []
    if archs and not any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        raise ValueError(f"{path} holds a {', '.join(archs)}, not a causal LM; SAEs here read decoder-only "
                         "causal language models")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if hf_cfg.get("model_type") == "llama":
        from scalelab.model.hf import load_model

        try:
            model, _ = load_model(path, device=device)
            return model, tokenizer
        except ValueError:
            pass  # a Llama variant scalelab does not implement: transformers reads it below
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).to(device)
    except ValueError as err:
        raise ValueError(f"{path} cannot be loaded as a causal LM: {err}") from err
    return model.eval(), tokenizer


def n_layers(model: nn.Module) -> int:
    from scalelab.interp.sites import decoder_layers

    return len(decoder_layers(model))
