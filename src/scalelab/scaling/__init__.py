"""Scaling laws from a table of runs: fits, the sweep that feeds them, and capability forecasts.

Everything here is a pure function of its inputs (no files, no training); results are dataclasses with
`to_json`/`from_json`, so a stage can store a fit and a later one (the report, the RSP gate) can read it.

- `fit_chinchilla` — approach 3, L(N, D) = E + A/N^α + B/D^β with bootstrap intervals (`chinchilla`);
- `fit_isoflop` — approach 2, IsoFLOP minima and N_opt ∝ C^a, D_opt ∝ C^b (`isoflop`);
- `fit_power_law` — Kaplan-style L(N), L(D), L(C), with or without a floor (`kaplan`);
- `plan_sweep` — IsoFLOP profiles and hold-out runs from the depth dial (`planner`);
- `fit_capability`, `ForecastTable.forecast` — accuracy vs. compute or loss (`forecast`).

Which N: every fit takes `param_kind`, "total" (default) or "non_embedding". Total parameters are
Hoffmann et al.'s convention; Kaplan et al. counted non-embedding parameters, and Pearce & Song (2024,
"Reconciling Kaplan and Chinchilla Scaling Laws") show that at small scale, where embeddings are a
large share of the model (half or more of scalelab's smallest depths), that choice alone moves the
fitted exponents. Each result records the `param_kind` it used; planned runs carry both counts.
"""

from scalelab.scaling.chinchilla import ChinchillaFit, fit_chinchilla
from scalelab.scaling.forecast import CapabilityFit, Forecast, ForecastTable, fit_capability, forecast
from scalelab.scaling.isoflop import IsoFLOPFit, IsoFLOPProfile, fit_isoflop
from scalelab.scaling.kaplan import PowerLawFit, fit_power_law
from scalelab.scaling.planner import PlannedRun, SweepPlan, SweepSpec, plan_sweep, transfer_hparams
from scalelab.scaling.runs import Exclusion, Run, ScalingFitError, select_runs

__all__ = [
    "CapabilityFit", "ChinchillaFit", "Exclusion", "Forecast", "ForecastTable", "IsoFLOPFit", "IsoFLOPProfile",
    "PlannedRun", "PowerLawFit", "Run", "ScalingFitError", "SweepPlan", "SweepSpec", "fit_capability",
    "fit_chinchilla", "fit_isoflop", "fit_power_law", "forecast", "plan_sweep", "select_runs", "transfer_hparams",
]
