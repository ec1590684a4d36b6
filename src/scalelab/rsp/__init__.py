"""The Responsible Scaling Policy: policy, capability assessment, ASL determinations, safeguards and the gate.

The capability evaluations themselves are evals (`scalelab.evals.capability`: Inspect AI tasks, the
`scalelab` model provider, elicitations, `run_capability_evals`); this package turns their scores into
decisions. The policy (`rsp.policy`), the assessment against it (`rsp.assess`), the gate (`rsp.gate`) and
the measured safeguards (`rsp.safeguards`) build on those scores; `rsp.stage` assesses every model of a
run. Import from the submodules.
"""
