"""Interpretability I: sparse autoencoders on any HF causal LM.

Activations are read at named sites by forward hooks (`sites`), cached to disk in memmap shards
(`cache`), and an SAE from the registry (`sae`: ReLU+L1, TopK+AuxK, BatchTopK, JumpReLU) is trained
on them (`train`). `metrics` computes the field's numbers (FVU, L0, dead/dense, CE loss recovered, KL),
`concepts` scores features against the world's ground-truth concept labels next to a raw-neuron
baseline, `saelens` reads and writes SAELens's on-disk layout, `features` fills the feature store a
browser reads, and `stage` is the `interp` step of `scalelab run`.
"""
