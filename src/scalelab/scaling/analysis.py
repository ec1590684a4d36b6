"""Fit a finished sweep: the laws, the check against the entropy floor, hold-out validation, forecasts.

Input is the sweep's records (`sweep.run_sweep`: each run's `result.json` plus its eval scores); output
is the JSON-able content of `scaling/fit.json`. Every fit is one of the pure functions of this package,
run on the non-hold-out runs only; the hold-out runs (≥ 4× the largest fitted compute) are then
predicted and compared with what they measured:

- loss: the Chinchilla approach-3 law at the hold-out's (N, D), with the bootstrap band of the law;
- capabilities: for each world eval, accuracy as a baseline-floored sigmoid of the validation loss (the
  two-step method of Llama 3 and AI2's ladders), evaluated at the law's predicted loss for the
  hold-out, each bootstrap refit of the sigmoid paired with one of the law, so the interval carries both.

`forecast(eval_name, compute)` on the stored `ForecastTable` (`load_forecast_table`) answers the RSP
stage's question for a compute-optimal run of any size. Evals on which every fitted run scored at its baseline
carry no signal to fit and are listed under `forecasts_skipped` instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.errors import InputError, MissingInput
from scalelab.scaling.bootstrap import percentile_interval
from scalelab.scaling.chinchilla import ChinchillaFit, fit_chinchilla
from scalelab.scaling.forecast import CapabilityFit, ForecastTable, fit_capability
from scalelab.scaling.isoflop import fit_isoflop
from scalelab.scaling.kaplan import fit_power_law
from scalelab.scaling.runs import PARAM_KINDS, Run, ScalingFitError
from scalelab.scaling.serialize import encode

FORECAST_LEVEL = 0.9


def to_runs(records: Sequence[dict[str, Any]]) -> list[Run]:
    """The fits' table from sweep records (the training loop's result keys, budget and hold-out flag)."""
    return [Run(N=r["params"], D=r["tokens"], loss=r["final_val_loss"], C=r["train_flops"],
                N_nonemb=r["non_embedding_params"], name=r["name"], budget=r["budget"], holdout=r["holdout"])
            for r in records]


def eval_series(evals: dict[str, Any] | None) -> dict[str, tuple[float, float]]:
    """{eval name: (accuracy, floor)} for one run: the three world evals and arithmetic by digit count. A
    multiple-choice eval's floor is its best no-knowledge baseline (`evals.baselines`), not 1/choices: what a
    model scores from the prompt alone is not capability."""
    if not evals:
        return {}
    details = evals.get("details", {})
    out: dict[str, tuple[float, float]] = {}
    for name in ("fact_recall", "hazard_knowledge"):
        if name in evals:
            d = details.get(name, {})
            out[name] = (float(evals[name]), float(d.get("baseline", d.get("chance", 0.0))))
    arith = details.get("arithmetic")
    if arith:
        out["arithmetic"] = (float(arith["accuracy"]), 0.0)
        out["arithmetic_per_digit"] = (float(arith["per_digit_accuracy"]), 0.0)
        for digits, row in arith.get("by_digits", {}).items():
            out[f"arithmetic_{digits}digit"] = (float(row["exact_match"]), 0.0)
    return out


def law_samples(fit: ChinchillaFit, N: float, D: float) -> np.ndarray:
    """L(N, D) under each bootstrap refit of the law."""
    E, A, B, alpha, beta = np.asarray(fit.samples, dtype=float).reshape(-1, 5).T
    return E + A / N ** alpha + B / D ** beta


def validate_holdouts(fit: ChinchillaFit, holdouts: Sequence[Run]) -> list[dict[str, Any]]:
    """Predicted vs measured loss of each hold-out run, with the law's band and the % error."""
    rows = []
    for h in holdouts:
        N = h.n_params(fit.param_kind)  # type: ignore[arg-type]
        predicted = float(fit.predict(N, h.D))
        lo, hi = fit.predict_interval(N, h.D)
        rows.append({"name": h.name, "params": h.N, "non_embedding_params": h.N_nonemb, "tokens": h.D,
                     "compute": h.compute, "predicted_loss": predicted, "interval": [float(lo), float(hi)],
                     "actual_loss": h.loss, "error_pct": 100.0 * (predicted - h.loss) / h.loss})
    return rows


def fit_forecasts(records: Sequence[dict[str, Any]], law: ChinchillaFit, n_bootstrap: int,
                  ) -> tuple[ForecastTable, list[dict[str, Any]], dict[str, str]]:
    """Capability fits on the fitted runs, their check on the hold-outs, and the evals left out (why)."""
    fitted = [r for r in records if not r["holdout"] and math.isfinite(r["final_val_loss"])]
    held = [r for r in records if r["holdout"]]
    series = [eval_series(r.get("evals")) for r in fitted]
    names = sorted(set.intersection(*(set(s) for s in series))) if series and all(series) else []
    fits: dict[str, CapabilityFit] = {}
    skipped: dict[str, str] = {}
    for name in names:
        acc = [s[name][0] for s in series]
        chance = float(np.mean([s[name][1] for s in series]))
        if max(acc) <= chance + 1e-9:
            skipped[name] = f"every fitted run scored at or below its no-knowledge baseline ({chance:.3g}): no signal"
            continue
        try:
            fits[name] = fit_capability([r["final_val_loss"] for r in fitted], acc, chance=chance, basis="loss",
                                        eval_name=name, n_bootstrap=n_bootstrap, level=FORECAST_LEVEL)
        except ScalingFitError as err:
            skipped[name] = str(err)
    checks = []
    for name, cap in fits.items():
        for h in held:
            actual = eval_series(h.get("evals")).get(name)
            n_params = h["params"] if law.param_kind == "total" else h["non_embedding_params"]
            loss = float(law.predict(n_params, h["tokens"]))
            accs = cap.predict_paired(law_samples(law, n_params, h["tokens"]))
            predicted = float(cap.predict(loss))
            checks.append({
                "eval": name, "run": h["name"], "compute": h["train_flops"], "predicted_loss": loss,
                "predicted": predicted,
                "interval": list(percentile_interval(accs, FORECAST_LEVEL)) if accs.size else [math.nan, math.nan],
                "actual": None if actual is None else actual[0],
                "error": None if actual is None else predicted - actual[0],
            })
    return ForecastTable(fits=fits, loss_law=law), checks, skipped


def _summary_of(fit: ChinchillaFit) -> dict[str, Any]:
    return {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a, "b": fit.b,
            "intervals": {k: list(v) for k, v in fit.intervals.items()}, "level": fit.level,
            "param_kind": fit.param_kind, "n_runs": fit.n_runs, "rms_log_residual": fit.rms_log_residual}


def analyse_sweep(records: Sequence[dict[str, Any]], *, entropy_floor: float | None, param_kind: str = "total",
                  vocab_size: int | None = None, n_bootstrap: int = 200, seed: int = 0) -> dict[str, Any]:
    """Every fit on a finished sweep; the content of `scaling/fit.json`."""
    if param_kind not in PARAM_KINDS:
        raise ScalingFitError(f"scaling.param_kind={param_kind!r} is unknown; use one of {', '.join(PARAM_KINDS)}")
    runs = to_runs(records)
    # a run worse than a uniform guess over the vocabulary learned nothing: count it as diverged
    max_loss = math.log(vocab_size) if vocab_size else None
    law = fit_chinchilla(runs, param_kind=param_kind, max_loss=max_loss,  # type: ignore[arg-type]
                         n_bootstrap=n_bootstrap, seed=seed)
    other_kind = "non_embedding" if param_kind == "total" else "total"
    other = fit_chinchilla(runs, param_kind=other_kind, max_loss=max_loss,  # type: ignore[arg-type]
                           n_bootstrap=max(10, n_bootstrap // 4), seed=seed)
    try:
        iso, iso_error = fit_isoflop(runs, param_kind=param_kind, max_loss=max_loss,  # type: ignore[arg-type]
                                     n_bootstrap=n_bootstrap, seed=seed), None
    except ScalingFitError as err:
        # approach 2 needs convex profiles; noisy or one-sided ones leave approach 3 standing, so say why and go on
        iso, iso_error = None, str(err)
    # the single-variable fits are shown for comparison only: fewer refits keep the stage quick, and a
    # lower envelope with too few distinct N or D records its reason rather than stopping the stage
    kaplan: dict[str, Any] = {}
    for v in ("N", "D"):
        try:
            kaplan[v] = fit_power_law(runs, v, lower_envelope=True, param_kind=param_kind,  # type: ignore[arg-type]
                                      max_loss=max_loss, n_bootstrap=max(10, n_bootstrap // 4), seed=seed).to_dict()
        except ScalingFitError as err:
            kaplan[v] = {"error": str(err)}
    holdout = validate_holdouts(law, [r for r in runs if r.holdout])
    table, checks, skipped = fit_forecasts(records, law, n_bootstrap)
    errors = [abs(h["error_pct"]) for h in holdout]
    return {
        "param_kind": param_kind,
        "param_kind_note": ("N counts every parameter (Hoffmann et al.)" if param_kind == "total" else
                            "N counts non-embedding parameters (Kaplan et al.)"),
        "fit": _summary_of(law),
        "fit_other_param_kind": _summary_of(other),
        "entropy_floor": entropy_floor,
        "E_minus_floor": None if entropy_floor is None else law.E - entropy_floor,
        "holdout": holdout,
        "holdout_mean_abs_error_pct": float(np.mean(errors)) if errors else None,
        "holdout_max_abs_error_pct": float(np.max(errors)) if errors else None,
        "optimal_exponents": {
            "a": iso.a if iso else None, "b": iso.b if iso else None,
            "intervals": {k: list(v) for k, v in iso.intervals.items()} if iso else None,
            "method": "approach 2 (IsoFLOP minima)", "approach2_error": iso_error,
            "approach3_a": law.a, "approach3_b": law.b,
            "approach3_intervals": {"a": list(law.intervals["a"]), "b": list(law.intervals["b"])},
        },
        "forecasts": {"checks": checks, "skipped": skipped, "level": FORECAST_LEVEL,
                      "mean_abs_error": (float(np.mean([abs(c["error"]) for c in checks if c["error"] is not None]))
                                         if checks else None)},
        "excluded": [encode(e) for e in law.excluded if not e.reason.startswith("hold-out")],
        "chinchilla": law.to_dict(),  # type: ignore[attr-defined]
        "isoflop": iso.to_dict() if iso else None,  # type: ignore[attr-defined]
        "kaplan": kaplan,
        "forecast_table": table.to_dict(),  # type: ignore[attr-defined]
        "runs": [{k: v for k, v in r.items() if k not in ("evals",)} | {"evals": eval_scores(r.get("evals"))}
                 for r in records],
    }


def eval_scores(evals: dict[str, Any] | None) -> dict[str, float]:
    """{eval name: accuracy} of one run (the names of `eval_series`)."""
    return {k: a for k, (a, _) in eval_series(evals).items()}


def load_forecast_table(fit_json: Path | str) -> ForecastTable:
    """The capability forecasts stored in a `scaling/fit.json` (call `.forecast(eval_name, compute)`)."""
    path = Path(fit_json)
    if path.is_dir():
        path = path / "fit.json"
    if not path.is_file():
        raise MissingInput(f"{path} not found; run `scalelab scale` (or `scalelab run`) to write it")
    data = json.loads(path.read_text(encoding="utf-8"))
    if "forecast_table" not in data:
        raise InputError(f"{path} has no forecast_table; it was not written by the scaling stage")
    return ForecastTable.from_dict(data["forecast_table"])  # type: ignore[attr-defined]
