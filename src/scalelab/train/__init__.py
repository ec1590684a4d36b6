"""Pretraining: the loop, its schedule and optimiser, checkpoints, and data-parallel runs."""

from scalelab.train.loop import NonFiniteLossError, pretrain, token_budget

__all__ = ["NonFiniteLossError", "pretrain", "token_budget"]
