"""The Responsible Scaling Policy stage: capability evaluations, policy, ASL determinations, safeguards, gate.

Capability evaluations are Inspect AI tasks (`rsp.tasks`) run on scalelab models through the `scalelab`
model provider (`rsp.provider`) under several elicitations (`rsp.elicitation`), by `rsp.runner.run_evals`.
The policy, assessments and gate (`rsp.policy`, `rsp.assess`, `rsp.gate`, `rsp.stage`) and the measured
safeguards (`rsp.safeguards`, `rsp.drift`) build on those scores. Import from the submodules.
"""
