"""Configs of the experiments past the data wall: repeated vs fresh data, and synthetic data (verified or not).

They sit beside the code that reads them (`scaling.data_constrained`, `scaling.synthetic`) and are gathered
into the `reasoning` section of `RunConfig`, whose stage runs both at the smallest rung; `scalelab scale
data-constrained` and `scalelab synth` run their fuller versions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DataConstrainedConfig:
    """Muennighoff et al. (2023): a budget of U unique tokens trained for several epochs, against fresh data."""

    depth: int = 0
    """model depth of every run (0: the smallest ladder rung)."""
    unique_tokens: int = 0
    """U, the unique-token budget (0: the training split's tokens / the largest epoch count, so the fresh-data
    runs never repeat a token)."""
    epochs: list[float] = field(default_factory=lambda: [1, 2, 4, 8, 16, 40])
    """passes over U; each is trained twice at the same compute: on U repeated, and on as many fresh tokens."""
    batch_size: int = 0
    """sequences per step (0: scaling.batch_size, else train.batch_size)."""
    eval_items: int = 0
    """eval items per set for the knowledge gap of each run (0: evals.max_items)."""
    n_bootstrap: int = 200
    """bootstrap resamples of the runs for the fit's intervals."""
    workers: int = 0
    """runs trained at once, one torch thread each (0: one per CPU core on CPU)."""


@dataclass
class SyntheticConfig:
    """Synthetic data written by a model, as is or filtered by the world's checker, and its recursion."""

    depth: int = 0
    """depth of the models trained on each arm (0: the smallest ladder rung)."""
    writer_depth: int = 0
    """the ladder rung that writes generation 0's documents in `scalelab run` (0: the largest)."""
    unique_tokens: int = 0
    """real tokens every arm starts from (0: data_constrained's U)."""
    synthetic_tokens: int = 0
    """tokens each arm adds to them: repeated real, model-written, or model-written and verified (0: as many as
    the real ones)."""
    train_epochs: float = 4.0
    """training tokens of every run, in passes over the real tokens (the same compute for every arm)."""
    prompt_tokens: int = 8
    """a written document continues this many tokens of a real document's opening."""
    max_new_tokens: int = 160
    temperature: float = 1.0
    generations: int = 3
    """recursion: generation n+1 trains on generation n's unfiltered output (replace) or on it added to all
    that came before (accumulate)."""
    batch_size: int = 0
    """sequences per training step (0: data_constrained's)."""
    sample_batch: int = 64
    """documents written per sampling batch."""
    ngram: int = 3
    """n of the distinct-n-gram diversity measure."""
    eval_items: int = 0
    """eval items per set for the knowledge gap (0: evals.max_items)."""
    workers: int = 0
    """runs trained at once, one torch thread each (0: one per CPU core on CPU)."""
