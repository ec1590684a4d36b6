"""SAEs on disk in SAELens's layout: `cfg.json` + `sae_weights.safetensors` (+ our training metrics).

Writing: the input normalisation is folded into the weights (`SAE.inference_state`), so the file says
`normalize_activations: "none"` and SAELens's `SAE.load_from_disk` reconstructs exactly what scalelab
computes. Architectures map to SAELens's names: relu → `standard`, topk → `topk` (with `k`), jumprelu →
`jumprelu` (a `threshold` per latent), and batchtopk → `jumprelu` with its learned shared threshold,
which is what a BatchTopK SAE is at inference (SAELens exports it the same way). The site is recorded
both as TransformerLens's hook name (`blocks.L.hook_resid_post`) and as scalelab's (`resid_post.L`).

Reading accepts any SAELens-layout folder of those architectures, from scalelab or from SAELens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from scalelab.artifacts import atomic_write_bytes, atomic_write_json
from scalelab.errors import InputError, MissingInput
from scalelab.interp.sae import SAE, SAEConfig, make_sae

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
METRICS = "training_metrics.json"
_HOOKS = {"resid_pre": "hook_resid_pre", "resid_post": "hook_resid_post", "attn_out": "hook_attn_out",
          "mlp_out": "hook_mlp_out", "mlp_in": "ln2.hook_normalized", "mlp_hidden": "mlp.hook_post"}
_FROM_SAELENS = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}


def tl_hook_name(site: str) -> str:
    """scalelab site `resid_post.3` → TransformerLens hook name `blocks.3.hook_resid_post`."""
    kind, _, layer = site.partition(".")
    return f"blocks.{layer}.{_HOOKS[kind]}"


def site_from_hook(hook: str) -> str | None:
    parts = hook.split(".", 2)
    if len(parts) == 3 and parts[0] == "blocks":
        for kind, name in _HOOKS.items():
            if parts[2] == name:
                return f"{kind}.{parts[1]}"
    return None


def save_sae(sae: SAE, out_dir: Path | str, metadata: dict[str, Any] | None = None,
             training_metrics: dict[str, Any] | None = None) -> Path:
    """Write `sae` in SAELens's layout; `metadata` should carry model_name (the model folder) and site."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arch, state, extra = sae.inference_state()
    meta = dict(metadata or {})
    site = meta.pop("site", None)
    if site:
        meta.setdefault("hook_name", tl_hook_name(site))
        meta["scalelab_site"] = site
    meta["scalelab_arch"] = sae.cfg.arch
    meta["scalelab_config"] = sae.cfg.to_dict()
    cfg: dict[str, Any] = {
        "architecture": arch, "d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
        "metadata": meta, **extra,
    }
    if arch == "topk":
        cfg.update(k=sae.cfg.k, rescale_acts_by_decoder_norm=False)
    atomic_write_bytes(out / WEIGHTS, safetensors_bytes(state, metadata={"format": "pt"}))
    if training_metrics is not None:
        atomic_write_json(out / METRICS, training_metrics)
    atomic_write_json(out / CFG, cfg)  # last: a cfg.json marks a complete folder
    return out


def read_cfg(sae_dir: Path | str) -> dict[str, Any]:
    path = Path(sae_dir) / CFG
    if not path.is_file():
        raise MissingInput(f"{path} not found; an SAE folder holds {CFG} and {WEIGHTS} (SAELens layout)")
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON: {err}") from err


def load_sae(sae_dir: Path | str) -> tuple[SAE, dict[str, Any]]:
    """A scalelab SAE (eval mode, reading raw activations) and the folder's cfg.json."""
    sae_dir = Path(sae_dir)
    cfg = read_cfg(sae_dir)
    arch = cfg.get("architecture", "standard")
    if arch not in _FROM_SAELENS:
        raise InputError(f"{sae_dir}: SAELens architecture {arch!r} is not supported; "
                         f"supported: {', '.join(_FROM_SAELENS)}")
    if cfg.get("normalize_activations", "none") != "none":
        raise InputError(f"{sae_dir}: normalize_activations={cfg['normalize_activations']!r}; fold the "
                         "normalisation into the weights first (SAELens: fold_activation_norm_scaling_factor)")
    meta = cfg.get("metadata") or {}
    saved = meta.get("scalelab_config") or {}
    sae_cfg = SAEConfig(**{**saved, "arch": _FROM_SAELENS[arch], "d_in": int(cfg["d_in"]),
                           "d_sae": int(cfg["d_sae"]), "k": int(cfg.get("k") or saved.get("k", 32))})
    try:
        state = load_file(sae_dir / WEIGHTS)
    except (OSError, Exception) as err:  # safetensors raises its own error type for a corrupt file
        raise InputError(f"cannot read {sae_dir / WEIGHTS}: {err}") from err
    missing = [k for k in ("W_enc", "b_enc", "W_dec", "b_dec") if k not in state]
    if missing:
        raise InputError(f"{sae_dir / WEIGHTS} lacks {', '.join(missing)}")
    if tuple(state["W_enc"].shape) != (sae_cfg.d_in, sae_cfg.d_sae):
        raise InputError(f"{sae_dir}: W_enc has shape {tuple(state['W_enc'].shape)}, cfg.json says "
                         f"d_in={sae_cfg.d_in}, d_sae={sae_cfg.d_sae}")
    sae = make_sae(sae_cfg)
    b_enc = state["b_enc"].float()
    if not cfg.get("apply_b_dec_to_input", True):
        # Our encoder always subtracts b_dec; compensate in the encoder bias.
        b_enc = b_enc + state["b_dec"].float() @ state["W_enc"].float()
    with torch.no_grad():
        sae.W_enc.copy_(state["W_enc"])
        sae.W_dec.copy_(state["W_dec"])
        sae.b_enc.copy_(b_enc)
        sae.b_dec.copy_(state["b_dec"])
        if arch == "jumprelu":
            sae.log_threshold.copy_(state["threshold"].float().clamp_min(1e-12).log())
    return sae.eval(), cfg


def site_of(cfg: dict[str, Any]) -> str:
    """The scalelab site an SAE folder was trained on."""
    meta = cfg.get("metadata") or {}
    site = meta.get("scalelab_site") or site_from_hook(str(meta.get("hook_name", "")))
    if not site:
        raise InputError(f"the SAE's cfg.json names hook {meta.get('hook_name')!r}, which maps to no scalelab "
                         "site; expected blocks.<layer>.hook_resid_post (or resid_pre/attn_out/mlp_out)")
    return site


