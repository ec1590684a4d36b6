"""Reasoning with verifiable rewards: tasks whose answers the world can check, the training that learns from
those checks (SFT on written traces, STaR, GRPO), and test-time compute measured with pass@k and majority@k.

The tasks (`reasoning.tasks`) write their own worked traces, including ones that make a mistake, check it
and correct it; `reasoning.sft`, `reasoning.star` and `reasoning.grpo` train any HF causal LM on them through
the shared LM handle and fine-tuning loop; `reasoning.evaluate` measures pass@k per difficulty; the `reasoning`
stage of `scalelab run` also runs the data-constrained and synthetic-data experiments of `scalelab.scaling`.
"""
