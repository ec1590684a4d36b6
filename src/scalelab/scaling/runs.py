"""The table every scaling fit reads: one `Run` per finished training run, and its validation.

A fit must never silently drop data. `select_runs` splits a table into the runs a fit uses and the
runs it leaves out, each with its reason (a hold-out run, a diverged run: NaN/inf loss or a loss above
`max_loss`), and every fit result carries that list. Bad input a user can fix (a negative parameter
count, too few runs for the number of parameters being fitted) raises `ScalingFitError` naming it.

Runs may be given as `Run`s or as plain dicts; dicts may use the field names below or the keys the
training loop writes to `result.json` (`params`, `non_embedding_params`, `tokens`, `train_flops`,
`final_val_loss`), so a sweep's results can be fitted as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from scalelab.errors import InputError
from scalelab.scaling.serialize import json_result

ParamKind = Literal["total", "non_embedding"]
PARAM_KINDS: tuple[str, ...] = ("total", "non_embedding")

# result.json key -> Run field, so the training loop's records need no translation.
_ALIASES = {
    "params": "N",
    "non_embedding_params": "N_nonemb",
    "tokens": "D",
    "train_flops": "C",
    "flops": "C",
    "final_val_loss": "loss",
}


class ScalingFitError(InputError):
    """The runs given to a fit cannot support it; the message names the input and how to fix it."""


@json_result("run")
@dataclass(frozen=True)
class Run:
    """One training run: N parameters (total), D training tokens, C training FLOPs, final loss.

    `C` defaults to 6·N·D (Kaplan et al. 2020, Hoffmann et al. 2022). `budget` names the IsoFLOP
    profile the run belongs to (its nominal compute), which approach 2 groups by; `holdout` keeps the
    run out of every fit so it can validate the fit's extrapolation.
    """

    N: float
    D: float
    loss: float
    C: float | None = None
    N_nonemb: float | None = None
    name: str = ""
    budget: float | None = None
    holdout: bool = False

    @property
    def compute(self) -> float:
        return float(self.C) if self.C is not None else 6.0 * self.N * self.D

    def n_params(self, kind: ParamKind) -> float:
        """N as counted by `kind`: "total" (Chinchilla's convention) or "non_embedding" (Kaplan's)."""
        if kind == "total":
            return float(self.N)
        if kind == "non_embedding":
            if self.N_nonemb is None:
                raise ScalingFitError(
                    f"run {self.label!r} has no non-embedding parameter count; give N_nonemb "
                    "(or non_embedding_params) for every run, or fit with param_kind='total'"
                )
            return float(self.N_nonemb)
        raise ScalingFitError(f"param_kind={kind!r} is unknown; use one of {', '.join(PARAM_KINDS)}")

    @property
    def label(self) -> str:
        return self.name or f"N={self.N:.3g},D={self.D:.3g}"


@json_result("exclusion")
@dataclass(frozen=True)
class Exclusion:
    """A run a fit did not use, and why (reported in every fit result, never dropped silently)."""

    name: str
    N: float
    D: float
    loss: float
    reason: str


def as_run(item: Run | Mapping[str, Any], index: int = 0) -> Run:
    """A Run from a Run or a dict (field names or result.json keys); unknown keys are ignored."""
    if isinstance(item, Run):
        run = item
    elif isinstance(item, Mapping):
        fields = {_ALIASES.get(k, k): v for k, v in item.items()}
        missing = [k for k in ("N", "D", "loss") if fields.get(k) is None]
        if missing:
            raise ScalingFitError(
                f"run #{index} ({dict(item)!r}) lacks {', '.join(missing)}; each run needs N (or params), "
                "D (or tokens) and loss (or final_val_loss)"
            )
        known = {k: fields[k] for k in Run.__dataclass_fields__ if k in fields}
        for key in ("N", "D", "loss", "C", "N_nonemb", "budget"):
            if known.get(key) is not None:
                known[key] = float(known[key])
        run = Run(**known)
    else:
        raise ScalingFitError(f"run #{index} is a {type(item).__name__}; give a Run or a dict")
    for key in ("N", "D", "C", "N_nonemb", "budget"):
        value = getattr(run, key)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ScalingFitError(f"run {run.label!r} has {key}={value}; it must be a positive finite number")
    return run


def select_runs(runs: Iterable[Run | Mapping[str, Any]], *, max_loss: float | None = None,
                ) -> tuple[list[Run], tuple[Exclusion, ...]]:
    """Split runs into those a fit may use and the excluded ones (hold-outs, diverged runs).

    A run has diverged when its loss is NaN/inf or above `max_loss` (None: no threshold; a natural
    choice is ln(vocab_size), the loss of a uniform guess, which a run that learned anything beats).
    A loss of zero or below is not a divergence but impossible input (the fits work on log-loss).
    """
    kept: list[Run] = []
    excluded: list[Exclusion] = []
    for i, item in enumerate(runs):
        run = as_run(item, i)
        reason = ""
        if run.holdout:
            reason = "hold-out run (kept out of every fit)"
        elif not math.isfinite(run.loss):
            reason = f"diverged: loss is {run.loss}"
        elif max_loss is not None and run.loss > max_loss:
            reason = f"diverged: loss {run.loss:.4g} > max_loss {max_loss:.4g}"
        elif run.loss <= 0:
            raise ScalingFitError(f"run {run.label!r} has loss={run.loss}; a cross-entropy loss must be > 0")
        if reason:
            excluded.append(Exclusion(run.label, run.N, run.D, run.loss, reason))
        else:
            kept.append(run)
    return kept, tuple(excluded)


def require_enough(n_points: int, n_params: int, what: str, excluded: tuple[Exclusion, ...] = (),
                   unit: str = "usable run(s)") -> None:
    """Raise unless there are more data points than fitted parameters (else no residual is left)."""
    if n_points > n_params:
        return
    dropped = [e for e in excluded if not e.reason.startswith("hold-out")]
    note = (f"; {len(dropped)} run(s) were excluded: " + "; ".join(f"{e.name} ({e.reason})" for e in dropped)
            if dropped else "")
    raise ScalingFitError(
        f"{what} fits {n_params} parameters but got {n_points} {unit}{note}; "
        f"it needs at least {n_params + 1} (add runs, or fix the diverged ones)"
    )
