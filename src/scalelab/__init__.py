"""scalelab: a frontier-lab pipeline — world corpus, scaling laws, post-training, RSP, interpretability."""

__version__ = "0.1.0"
