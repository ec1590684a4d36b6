"""Autonomy under the policy: the strongest learned computer-use agent assessed like a model, with a forecast.

The `computer` stage measures agents on held-out MiniWoB++ seeds; `computer.capability.autonomy_capability`
reads the strongest learned agent's success with its Wilson interval and the pixel agent's scaling curves
(held-out success against demonstrations per task and against policy size, each at a fixed training budget).
Here that score is assessed against the policy's agent thresholds (`Policy.agent_thresholds`, e.g. AUTONOMY-3)
with the same verdicts as a model, and each threshold gets a forecast for the next agent, the policy's
`compute_multiple` (4×) more behaviour-cloning data: success is fitted as a line in log2(demonstrations),
the growth from here to 4× is added to the measured score (anchored as the model forecasts are), and the
interval is the fit's ± 1.96 residual standard deviations. Fewer than two curve points: no forecast, and
the record says why.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scalelab.evals.capability.runner import EvalScore
from scalelab.rsp.assess import Assessment, assess_scores, capable_end, outlook
from scalelab.rsp.policy import Policy, Threshold

AGENT_EVAL = "computer_autonomy"


def curve_forecast(curve: list[list[float]], threshold: Threshold, value: float, multiple: float) -> dict[str, Any]:
    """The forecast at `multiple`× demonstrations from a [[demos, success]] curve (module docstring)."""
    base = {"key": "pixel demonstrations curve", "multiple": multiple}
    pts = [(float(n), float(r)) for n, r in curve if n and n > 0 and r is not None]
    if len(pts) < 2:
        return {**base, "error": "fewer than two points on the pixel agent's demonstrations curve (run the "
                                 "computer bench with --demo-curve)"}
    x = np.log2([n for n, _ in pts])
    y = np.array([r for _, r in pts])
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    sd = float(np.sqrt((resid ** 2).sum() / max(1, len(pts) - 2))) if len(pts) > 2 else abs(float(slope))
    growth = float(slope) * math.log2(multiple)
    expected = min(1.0, max(0.0, value + growth))
    lo, hi = (min(1.0, max(0.0, expected + d)) for d in (-1.96 * sd, 1.96 * sd))
    return {**base, "expected": expected, "interval": [lo, hi], "slope_per_doubling": float(slope),
            "points": [[n, r] for n, r in pts],
            "outlook": outlook(expected, capable_end((lo, hi), threshold.direction), threshold.red, threshold.yellow,
                               threshold.direction)}


def assess_autonomy(policy: Policy, capability: dict[str, Any]) -> Assessment | None:
    """The agent system's assessment under the policy's agent thresholds; None when the policy has none or no
    learned agent was evaluated."""
    thresholds = policy.agent_thresholds
    if not thresholds or capability.get("score") is None:
        return None
    n = int(capability["episodes"])
    lo, hi = capability["ci95"]
    score = EvalScore(eval=AGENT_EVAL, metric="accuracy", value=float(capability["score"]), ci=(lo, hi), n=n,
                      elicitation="zero_shot", log=None, per_item=[])
    demos = (capability.get("curve") or {}).get("demos") or []
    return assess_scores(policy, {AGENT_EVAL: {"zero_shot": score}}, model=f"agent:{capability['agent']}",
                         thresholds=thresholds,
                         forecasts=lambda t, value: curve_forecast(demos, t, value, policy.compute_multiple))
