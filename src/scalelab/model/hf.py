"""Checkpoints as Hugging Face Llama folders, in both directions.

`save_hf` writes what `LlamaForCausalLM.save_pretrained` would (config.json, model.safetensors,
generation_config.json) plus the tokenizer's files, so `AutoModelForCausalLM.from_pretrained` and
`AutoTokenizer.from_pretrained` open a scalelab model with no scalelab code installed.
`load_model` reads any HF Llama folder (ours, or an imported one such as SmolLM2) into scalelab's
`Llama`, because the parameter names are the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from scalelab.artifacts import atomic_write_bytes, atomic_write_text
from scalelab.chat_format import BOS, END, PAD
from scalelab.errors import InputError, MissingInput
from scalelab.model.config import ModelConfig
from scalelab.model.llama import Llama, rope_inv_freq

if TYPE_CHECKING:
    from transformers import LlamaConfig

WEIGHTS = "model.safetensors"
# Files a model folder owns; everything else in a tokenizer folder is the tokenizer's and is copied.
_MODEL_FILES = {"config.json", WEIGHTS, "generation_config.json", "meta.json"}


def _special_ids(tokenizer_dir: Path | None) -> dict[str, int | None]:
    ids: dict[str, int | None] = {"bos": None, "eos": None, "pad": None}
    tok_json = tokenizer_dir / "tokenizer.json" if tokenizer_dir else None
    if tok_json is None or not tok_json.is_file():
        return ids
    added = {t["content"]: t["id"] for t in json.loads(tok_json.read_text("utf-8")).get("added_tokens", [])}
    ids.update(bos=added.get(BOS), eos=added.get(END), pad=added.get(PAD))
    return ids


def to_llama_config(cfg: ModelConfig, special: dict[str, int | None] | None = None) -> LlamaConfig:
    # transformers is imported where used: it costs ~2 s at startup, which every training process
    # (and torchrun rank) would otherwise pay before its first step.
    from transformers import LlamaConfig

    special = special or {}
    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.depth, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.kv_heads,
        head_dim=cfg.head_dim, max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps,
        rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_embeddings,
        initializer_range=cfg.init_std, hidden_act="silu", attention_bias=False, mlp_bias=False,
        bos_token_id=special.get("bos"), eos_token_id=special.get("eos"), pad_token_id=special.get("pad"),
    )


def from_llama_config(hf: LlamaConfig, source: Path | str = "config.json") -> ModelConfig:
    """The ModelConfig for a HF Llama config; architectures scalelab does not implement are refused."""
    rope = getattr(hf, "rope_parameters", None) or {}
    unsupported = []
    if rope.get("rope_type", "default") != "default":
        unsupported.append(f"rope_type={rope.get('rope_type')!r}")
    if getattr(hf, "attention_bias", False) or getattr(hf, "mlp_bias", False):
        unsupported.append("attention/mlp bias")
    if getattr(hf, "hidden_act", "silu") != "silu":
        unsupported.append(f"hidden_act={hf.hidden_act!r}")
    if unsupported:
        raise InputError(f"{source}: scalelab's Llama does not implement {', '.join(unsupported)}; "
                         "load this model with transformers instead")
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    kv = hf.num_key_value_heads
    cfg = ModelConfig(
        depth=hf.num_hidden_layers, head_dim=head_dim,
        n_kv_heads=None if kv in (None, hf.num_attention_heads) else kv,
        vocab_size=hf.vocab_size, max_seq_len=hf.max_position_embeddings,
        tie_embeddings=bool(hf.tie_word_embeddings), rope_theta=float(rope.get("rope_theta", 10000.0)),
        norm_eps=hf.rms_norm_eps, init_std=hf.initializer_range,
    )
    # Express the shape with the depth dial when it fits, so a round trip gives back an equal config.
    if hf.hidden_size % hf.num_hidden_layers == 0:
        cfg.aspect_ratio = hf.hidden_size // hf.num_hidden_layers
    else:
        cfg.d_model_override = hf.hidden_size
    if cfg.d_ff != hf.intermediate_size:
        cfg.d_ff_override = hf.intermediate_size
    return cfg


def save_hf(model: Llama, out_dir: Path, tokenizer_dir: Path | None = None) -> Path:
    """Write `model` (and the tokenizer in `tokenizer_dir`, if given) as a HF Llama folder."""
    out_dir = Path(out_dir)
    if tokenizer_dir is not None and not Path(tokenizer_dir).is_dir():
        raise MissingInput(f"tokenizer directory {tokenizer_dir} does not exist; "
                                "pass the tokenizer artifact's folder or None")
    special = _special_ids(Path(tokenizer_dir) if tokenizer_dir else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is not None:
        for f in sorted(Path(tokenizer_dir).iterdir()):
            if f.is_file() and f.name not in _MODEL_FILES:
                atomic_write_bytes(out_dir / f.name, f.read_bytes())
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight")  # HF re-ties it from tie_word_embeddings
    atomic_write_bytes(out_dir / WEIGHTS, safetensors_bytes(state, metadata={"format": "pt"}))
    from transformers import GenerationConfig

    eos = [i for i in (special["eos"], special["bos"]) if i is not None] or None
    gen = GenerationConfig(bos_token_id=special["bos"], eos_token_id=eos, pad_token_id=special["pad"])
    atomic_write_text(out_dir / "generation_config.json", gen.to_json_string())
    # config.json last: its presence marks a complete folder for from_pretrained.
    atomic_write_text(out_dir / "config.json", to_llama_config(model.cfg, special).to_json_string())
    return out_dir


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    single, index = path / WEIGHTS, path / "model.safetensors.index.json"
    try:
        if single.is_file():
            return load_file(single)
        if index.is_file():
            files = sorted(set(json.loads(index.read_text("utf-8"))["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for name in files:
                state.update(load_file(path / name))
            return state
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError) as err:
        raise InputError(f"cannot read weights in {path}: {err}; the folder is incomplete or corrupt") from err
    raise MissingInput(f"{path} has no {WEIGHTS} (or sharded index); is it a HF model folder?")


def load_model(path: Path | str, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> tuple[Llama, ModelConfig]:
    """Load a HF Llama folder into scalelab's model (eval mode) and return it with its config."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise MissingInput(f"{cfg_file} not found; expected a HF model folder (config.json + safetensors)")
    from transformers import LlamaConfig

    hf = LlamaConfig.from_pretrained(path)
    if hf.model_type != "llama":
        raise InputError(f"{cfg_file} has model_type={hf.model_type!r}; load_model reads Llama models only")
    cfg = from_llama_config(hf, cfg_file)
    with torch.device("meta"):
        model = Llama(cfg)
    state = _read_state(path)
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
        state["lm_head.weight"] = state.get("model.embed_tokens.weight")  # type: ignore[assignment]
    expected = set(model.state_dict())
    missing = sorted(k for k in expected if state.get(k) is None)
    if missing:
        raise InputError(f"{path}: weights missing for {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}")
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items() if k in expected}
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.inv_freq = rope_inv_freq(cfg, device)  # built on the meta device above, so it has no data yet
    return model.eval(), cfg
