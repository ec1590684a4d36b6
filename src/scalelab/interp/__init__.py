"""Interpretability: sparse autoencoders on any HF causal LM, and the studies built on them.

Activations are read at named sites by forward hooks (`sites`), cached to disk in memmap shards
(`cache`), and an SAE from the registry (`sae`: ReLU+L1, TopK+AuxK, BatchTopK, JumpReLU) is trained
on them (`train`). `metrics` computes the field's numbers (FVU, L0, dead/dense, CE loss recovered, KL),
`concepts` scores features against the world's ground-truth concept labels next to a raw-neuron
baseline, `saelens` reads and writes SAELens's on-disk layout, `features` fills the feature store a
browser reads. Interpretability II: `steering` clamps features during any forward (and `steering_eval`
measures it), `superposition` reproduces the toy models, `probes` reads concepts per layer, `universality`
matches features across models, `circuits` builds checked attribution graphs from transcoders, and
`sae_scaling` fits SAE scaling laws. `stage` (with `studies` and `report`) is the `interp` step of
`scalelab run`; `cli` is `scalelab interp`.
"""
