"""Steering: clamp SAE features during any forward pass of a model, Golden Gate style.

Scaling Monosemanticity (Templeton et al. 2024) steered Claude by *clamping* a feature: at every position the
feature's activation is replaced by a fixed value (10× its maximum observed activation for Golden Gate Claude)
while the SAE's reconstruction error is kept, so only the named features change. Here, at the SAE's site,

    x' = x + Σ_i (v_i − f_i(x)) · d_i

where f_i(x) is feature i's activation, d_i its decoder direction (raw activation units) and v_i the clamp
value: `scale × max_act[i]` (the feature store's maximum activation), or with `relative=True` `scale × f_i(x)`
(the feature's own activation, rescaled). Scale 0 is ablation; relative scale 1 leaves the model exactly as it
was. The hooks sit on the model's modules (`interp.sites.site_hook`), so every forward inside the `with` block
is steered: `LM.generate/complete/chat` (KV-cached or not), evals, log-likelihood scoring. Positions are all
clamped, prompt included, as in the paper.

    from scalelab.interp.steering import steer, ablate

    lm = load_lm("out/run/models/d5/final")
    with steer(lm, "out/run/interp/d5", {123: 10.0}):      # feature 123 at 10x its max activation
        print(lm.complete(["The"], 20))
    with ablate(lm, "out/run/interp/d5", [45, 46]):         # features 45, 46 at zero
        ...

`steer` and `ablate` return a `Steering`, a context manager that can be entered again and again (a chat's
turns); bad requests fail when it is made, before any forward. `sae` is an SAE folder (SAELens layout: its site
comes from `cfg.json`, its max activations from the feature store `features.sqlite` that `scalelab interp
features` fills) or an `SAE` object with `site=` and `max_acts=` given. A generator (`LM.stream`) is steered only
while it is consumed inside the block. `from_flags` is what `scalelab generate/chat --sae DIR --steer FEATURE=SCALE
--ablate FEATURE` use.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from torch import nn

from scalelab.errors import InputError, MissingInput
from scalelab.interp.sae import SAE
from scalelab.interp.saelens import load_sae, site_of
from scalelab.interp.sites import n_layers, parse_site, site_hook
from scalelab.model.lm import LM

FEATURE_STORE = "features.sqlite"


def parse_feature_scales(specs: Sequence[str]) -> dict[int, float]:
    """`["12=10", "7=-2"]` (FEATURE=SCALE, as `--steer` takes them) → {12: 10.0, 7: -2.0}."""
    out: dict[int, float] = {}
    for spec in specs:
        feature, sep, scale = spec.partition("=")
        try:
            if not sep:
                raise ValueError
            out[int(feature)] = float(scale)
        except ValueError:
            raise InputError(f"--steer {spec!r} must be FEATURE=SCALE, e.g. 123=10 (feature 123 clamped to 10x its "
                             "max activation)") from None
    return out


def max_activations(sae_dir: Path | str) -> dict[int, float]:
    """Every feature's maximum activation, from the SAE folder's feature store."""
    db = Path(sae_dir) / FEATURE_STORE
    if not db.is_file():
        raise MissingInput(f"{db} does not exist: steering by scale needs each feature's max activation; build the "
                           f"store with `scalelab interp features {sae_dir} --text TEXT`, or steer relative to the "
                           "feature's own activation")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {int(i): float(m) for i, m in con.execute("SELECT id, max_act FROM features")}
    finally:
        con.close()


def _resolve(sae: SAE | Path | str, site: str | None) -> tuple[SAE, str, Path | None]:
    if isinstance(sae, SAE):
        if site is None:
            raise InputError("steering with an SAE object needs site= (e.g. 'resid_post.2'); an SAE folder "
                             "records its own")
        return sae, site, None
    model, cfg = load_sae(sae)
    return model, site or site_of(cfg), Path(sae)


def _model(lm: LM | nn.Module) -> nn.Module:
    return lm.model if isinstance(lm, LM) else lm


class Steering(AbstractContextManager):
    """A prepared intervention: its hook is attached when a `with` block opens and removed when it closes, so one
    `Steering` can serve many blocks (a chat's turns). At the site, feature i is set to `values[i]` (a constant)
    or to `scales[i]` times its own activation, at every position of every forward; the SAE's error is kept."""

    def __init__(self, model: nn.Module, sae: SAE, site: str, values: Mapping[int, float] | None = None, *,
                 scales: Mapping[int, float] | None = None) -> None:
        values, scales = dict(values or {}), dict(scales or {})
        feats = sorted({*values, *scales})
        bad = [f for f in feats if not 0 <= f < sae.cfg.d_sae]
        if bad:
            raise InputError(f"feature(s) {bad} out of range: this SAE has features 0..{sae.cfg.d_sae - 1}")
        self.model, self.sae, self.site = model, sae, parse_site(site, n_layers(model))
        self.features = feats
        self._idx = torch.tensor(feats, dtype=torch.long)
        self._const = torch.tensor([values.get(f, 0.0) for f in feats])
        self._mult = torch.tensor([scales.get(f, 0.0) for f in feats])
        self._relative = torch.tensor([f in scales for f in feats])
        # Decoder rows in raw activation units: decode(f) = (f @ W_dec + b_dec) / norm_scale.
        self._directions = (sae.W_dec.detach()[self._idx] / sae.norm_scale).float()
        self._stack: contextlib.ExitStack | None = None

    def _hook(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            xf = x.float()
            dev = xf.device
            f = self.sae.encode(xf.to(self._directions.device))[..., self._idx].to(dev)
            target = torch.where(self._relative.to(dev), self._mult.to(dev) * f, self._const.to(dev))
            return (xf + (target - f) @ self._directions.to(dev)).to(x.dtype)

    def __enter__(self) -> Steering:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(site_hook(self.model, self.site, self._hook))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


def steer(lm: LM | nn.Module, sae: SAE | Path | str, features: Mapping[int, float], *, site: str | None = None,
          max_acts: Mapping[int, float] | None = None, relative: bool = False) -> Steering:
    """Clamp each feature of `features` ({feature: scale}) to scale × its max activation inside `with` blocks.

    lm        an `LM` (`scalelab.model.lm.load_lm`) or its bare `nn.Module`
    sae       an SAE folder (SAELens layout) or an `SAE` object (then `site` is required)
    features  {feature id: scale}; 0 ablates, 10 is the paper's Golden Gate clamp
    site      where the SAE reads (default: the folder's `cfg.json`), e.g. "resid_post.2"
    max_acts  {feature id: max activation} (default: the folder's feature store)
    relative  scale the feature's own activation instead (1 changes nothing, 0 ablates); needs no max_acts
    Bad requests (a feature out of range, no max activation) raise `InputError` here, before any block.
    """
    model = _model(lm)
    sae_obj, site_name, folder = _resolve(sae, site)
    if relative:
        return Steering(model, sae_obj, site_name, scales=features)
    scaled = {f: s for f, s in features.items() if s != 0}  # scale 0 (ablation) needs no max activation
    if scaled and max_acts is None:
        if folder is None:
            raise InputError("steer() with an SAE object needs max_acts= (or relative=True)")
        max_acts = max_activations(folder)
    missing = [f for f in scaled if f not in (max_acts or {})]
    if missing:
        raise InputError(f"no max activation known for feature(s) {missing}")
    values = {f: s * max_acts[f] if s != 0 else 0.0 for f, s in features.items()}  # type: ignore[index]
    return Steering(model, sae_obj, site_name, values)


def ablate(lm: LM | nn.Module, sae: SAE | Path | str, features: Iterable[int], *, site: str | None = None,
           ) -> Steering:
    """Zero each feature of `features` at every position inside `with` blocks (the SAE's error is kept)."""
    sae_obj, site_name, _ = _resolve(sae, site)
    return Steering(_model(lm), sae_obj, site_name, {int(f): 0.0 for f in features})


def from_flags(lm: LM | nn.Module, sae_dir: Path | str | None, steer_specs: Sequence[str] = (),
               ablate_ids: Sequence[int] = ()) -> AbstractContextManager:
    """The intervention `--steer FEATURE=SCALE` (repeatable) and `--ablate FEATURE` ask for on the SAE in
    `sae_dir`; a no-op when neither is given."""
    if not steer_specs and not ablate_ids:
        return contextlib.nullcontext()
    if sae_dir is None:
        raise InputError("--steer/--ablate need --sae DIR (an SAE folder of this model, e.g. RUN/interp/d4)")
    features = {**parse_feature_scales(steer_specs), **{int(f): 0.0 for f in ablate_ids}}
    return steer(lm, sae_dir, features)
