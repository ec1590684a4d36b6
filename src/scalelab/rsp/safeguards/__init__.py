"""Safeguards measured, not declared: refusal robustness, a hazard probe, an SAE-feature monitor, an output filter.

One module per safeguard (`refusal`, `classifier` + `probe`, `sae_monitor`, `output_filter`), the hazard-labelled
world text they are trained and tested on (`data`), and `suite.measure_safeguards`, which runs the ones a policy
requires and checks their pass criteria.
"""

from scalelab.rsp.safeguards.catalogue import BOUNDS, SAFEGUARD_NAMES, SafeguardResult
from scalelab.rsp.safeguards.output_filter import OutputFilter
from scalelab.rsp.safeguards.suite import find_sae, measure_safeguards

__all__ = ["BOUNDS", "SAFEGUARD_NAMES", "OutputFilter", "SafeguardResult", "find_sae", "measure_safeguards"]
