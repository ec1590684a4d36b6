"""Named activation sites on any decoder-only causal LM, read and patched by forward hooks.

A site is `<kind>.<layer>`: `resid_pre` (the residual stream entering a block), `resid_post` (leaving
it), `attn_out`, `mlp_out` (the sublayers' outputs added to the residual), `mlp_in` (the normalised
residual the MLP reads: what a transcoder encodes) and `mlp_hidden` (the MLP's activations entering its
down projection, i.e. its neurons). The layer is an index, negative from the
end, or `mid`. Hooks work on scalelab's `Llama` and on HF models alike because both name their modules
`model.layers.{i}.self_attn/mlp` (GPT-2-style `transformer.h.{i}.attn/mlp` is also understood), so no
model code is changed. Reading a site can stop the forward pass right after it (`StopForward`), which
halves the cost of caching a mid-layer of a deep model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from scalelab.errors import InputError

SITE_KINDS = ("resid_pre", "resid_post", "attn_out", "mlp_out", "mlp_in", "mlp_hidden")
# Per family: (attention submodule, MLP submodule, the MLP's output projection whose input is the neurons).
_SUBMODULES = (("self_attn", "mlp", "down_proj"), ("attn", "mlp", "c_proj"))


class StopForward(Exception):
    """Raised by a capture hook once the site is read, to skip the rest of the forward pass."""


@dataclass(frozen=True)
class Site:
    kind: str
    layer: int

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}"


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a causal LM, or a ValueError naming what was found."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj: object = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise InputError(f"{type(model).__name__} is not a decoder-only causal LM with a list of layers "
                     "(model.layers / transformer.h); pass a HF causal LM folder or a scalelab checkpoint")


def embedding_module(model: nn.Module) -> nn.Module:
    """The token embedding of a scalelab Llama (`model.embed_tokens`) or a HF causal LM."""
    if hasattr(model, "get_input_embeddings"):
        return model.get_input_embeddings()
    return model.model.embed_tokens


def valid_sites(n_layers: int) -> list[str]:
    return [f"{k}.{i}" for k in SITE_KINDS for i in range(n_layers)]


def parse_site(spec: str, n_layers: int) -> Site:
    """`resid_post.3`, `mlp_out.-1` or `resid_post.mid` → Site; an unknown site lists the valid ones."""
    kind, _, layer_s = spec.partition(".")
    layer: int | None = None
    if layer_s == "mid":
        layer = n_layers // 2
    else:
        with contextlib.suppress(ValueError):
            layer = int(layer_s)
    if layer is not None and layer < 0:
        layer += n_layers
    if kind not in SITE_KINDS or layer is None or not 0 <= layer < n_layers:
        raise InputError(f"unknown site {spec!r} for a {n_layers}-layer model; valid sites: "
                         f"{', '.join(valid_sites(n_layers))} (the layer may also be negative or 'mid')")
    return Site(kind, layer)


def _site_module(model: nn.Module, site: Site) -> tuple[nn.Module, bool]:
    """The module to hook and whether the site is its input (pre-hook) rather than its output."""
    block = decoder_layers(model)[site.layer]
    if site.kind == "resid_pre":
        return block, True
    if site.kind == "resid_post":
        return block, False
    for attn, mlp, down in _SUBMODULES:
        if hasattr(block, attn) and hasattr(block, mlp):
            if site.kind == "attn_out":
                return getattr(block, attn), False
            if site.kind == "mlp_out":
                return getattr(block, mlp), False
            if site.kind == "mlp_in":
                return getattr(block, mlp), True
            proj = getattr(getattr(block, mlp), down, None)
            if proj is not None:
                return proj, True
    raise InputError(f"site {site.name}: block {type(block).__name__} has no recognised attention/MLP "
                     "submodules; use resid_pre or resid_post on this model")


def _first(x: object) -> torch.Tensor:
    return x[0] if isinstance(x, tuple) else x  # type: ignore[return-value]


@contextlib.contextmanager
def site_hook(model: nn.Module, site: Site,
              fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
    """Call `fn(activation)` at the site during forwards; a tensor it returns replaces the activation."""
    module, is_input = _site_module(model, site)
    if is_input:
        def pre(_m: nn.Module, args: tuple) -> tuple | None:
            new = fn(args[0])
            return None if new is None else (new, *args[1:])
        handle = module.register_forward_pre_hook(pre)
    else:
        def post(_m: nn.Module, _args: tuple, out: object) -> object:
            new = fn(_first(out))
            if new is None:
                return None
            return (new, *out[1:]) if isinstance(out, tuple) else new
        handle = module.register_forward_hook(post)
    try:
        yield
    finally:
        handle.remove()


def logits_of(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, V) from scalelab's Llama (returns a tensor) or a HF model (returns an output object)."""
    out = model(ids) if not hasattr(model, "config") else model(input_ids=ids, use_cache=False)
    return out if isinstance(out, torch.Tensor) else out.logits


@torch.no_grad()
def read_site(model: nn.Module, site: Site, ids: torch.Tensor) -> torch.Tensor:
    """The site's activations (B, T, d) for a batch of token ids, stopping the forward right after it."""
    grabbed: list[torch.Tensor] = []

    def grab(x: torch.Tensor) -> None:
        grabbed.append(x.detach())
        raise StopForward

    with site_hook(model, site, grab), contextlib.suppress(StopForward):
        logits_of(model, ids)
    if not grabbed:
        raise ValueError(f"site {site.name} was not reached in the forward pass of {type(model).__name__}")
    return grabbed[0]


@torch.no_grad()
def read_sites(model: nn.Module, sites: list[Site], ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Several sites' activations {name: (B, T, d)} from one forward pass, stopped after the last one reached."""
    grabbed: dict[str, torch.Tensor] = {}

    def grab(name: str) -> Callable[[torch.Tensor], None]:
        def fn(x: torch.Tensor) -> None:
            grabbed[name] = x.detach()
            if len(grabbed) == len(sites):
                raise StopForward
        return fn

    with contextlib.ExitStack() as stack, contextlib.suppress(StopForward):
        for site in sites:
            stack.enter_context(site_hook(model, site, grab(site.name)))
        logits_of(model, ids)
    missing = [s.name for s in sites if s.name not in grabbed]
    if missing:
        raise ValueError(f"sites {missing} were not reached in the forward pass of {type(model).__name__}")
    return grabbed


def n_layers(model: nn.Module) -> int:
    """The number of decoder layers of a scalelab Llama or a HF causal LM."""
    return len(decoder_layers(model))
