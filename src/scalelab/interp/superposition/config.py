"""Configuration of the toy-models-of-superposition reproduction: one dataclass per experiment.

The defaults are the command's (`scalelab interp superposition`, under a minute on 2 CPU cores);
`SuperpositionConfig.smoke()` is the same three experiments shrunk to seconds for tests. The paper's
own sizes are noted beside each field where ours differ, so a reader can see what was scaled down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STICKY_FRACTIONS: tuple[float, ...] = (1.0, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8)
"""Feature dimensionalities the paper finds features 'stick' at (dedicated, tetrahedron, triangle,
antipodal pair, pentagon, square antiprism)."""


@dataclass
class GeometryConfig:
    """Experiment (a): n features in 2 dimensions with decaying importance, across sparsity."""

    n_features: int = 5
    """Features (the paper's intro figure: 5)."""
    n_dims: int = 2
    """Hidden dimensions; the geometry labels (orthogonal pair, antipodal pairs, pentagon) assume 2."""
    importance_decay: float = 0.9
    """Feature i has importance decay**i, so feature 0 matters most."""
    sparsities: tuple[float, ...] = (0.0, 0.3, 0.5, 0.7, 0.75, 0.8, 0.825, 0.85, 0.875, 0.9, 0.95, 0.99)
    """Feature sparsities S (probability a feature is zero) swept."""
    steps: int = 1500
    """Adam steps per model (far fewer than the paper; the cosine decay settles them)."""
    batch_size: int = 256
    lr: float = 1e-2
    """Peak learning rate, cosine-decayed to zero."""
    restarts: int = 8
    """Random initialisations per sparsity; the one with the lowest held-out loss is kept. With 4, three
    sparsities of the antipodal regime kept feature 3 dropped instead of 4 (2-6% worse loss, measured)."""


@dataclass
class PhaseConfig:
    """Experiment (b): the phase diagram of n = 2 features in m = 1 dimension."""

    densities: int = 16
    """Grid points of feature density 1 − S, log-spaced from `min_density` to 1."""
    min_density: float = 0.01
    importances: int = 16
    """Grid points of the second feature's importance relative to the first, log-spaced over
    [1 / `importance_span`, `importance_span`]."""
    importance_span: float = 10.0
    quadrature: int = 8
    """Midpoint grid points per active feature: models train on the exact expected loss over all four
    on/off patterns instead of sampled batches (a sampled batch of 1024 holds ~10 active examples per
    feature at density 0.01); this takes sampling noise out of training and out of the restarts' ranking."""
    steps: int = 400
    lr: float = 3e-2
    restarts: int = 8
    """In one dimension half of all inits start both weights with one sign and settle on a dedicated
    dimension even where superposition is far better, so the diagram needs more restarts than (a)."""


@dataclass
class DimensionalityConfig:
    """Experiment (c): feature dimensionality across sparsity in a larger model, uniform importance."""

    n_features: int = 100
    """Features (the paper: 400)."""
    n_dims: int = 10
    """Hidden dimensions (the paper: 30)."""
    sparsities: int = 14
    """Settings swept, with density 1 − S log-spaced from 1 down to `min_density`."""
    min_density: float = 0.05
    """1/(1 − S) up to 20."""
    steps: int = 1000
    """Adam steps per model (far fewer than the paper; see BENCHMARKS.md for what that costs)."""
    batch_size: int = 256
    lr: float = 1e-2
    restarts: int = 2


@dataclass
class SuperpositionConfig:
    """All three experiments plus what they share: seed, thresholds, held-out batch."""

    enabled: bool = True
    """run in the `interp` stage of `scalelab run` (the command always runs)."""
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    phase: PhaseConfig = field(default_factory=PhaseConfig)
    dimensionality: DimensionalityConfig = field(default_factory=DimensionalityConfig)
    seed: int = 0
    """Seeds every init and batch; with one thread the results are bitwise repeatable."""
    represented_norm: float = 0.5
    """A feature is represented when ‖W_i‖ exceeds this (trained represented features sit near 1, the
    others near 0)."""
    antipodal_cos: float = 0.9
    """Two represented features are antipodal when cos(W_i, W_j) < −antipodal_cos."""
    polygon_tol_deg: float = 10.0
    """A regular k-gon: every gap between angularly neighbouring features within this of 360°/k."""
    orthogonal_cos: float = 0.1
    """Two represented features are orthogonal when |cos(W_i, W_j)| < orthogonal_cos."""
    sticky_window: float = 0.05
    """A feature 'sits at' a sticky fraction when its dimensionality is within this of one."""
    eval_batch: int = 8192
    """Held-out examples per setting on which restarts are compared (sampled experiments)."""

    @classmethod
    def smoke(cls) -> SuperpositionConfig:
        """Seconds, for tests: the same experiments on fewer settings and steps."""
        return cls(
            # Dense models settle slowest (the dropped features' norms decay last): 1,500 steps and 5
            # restarts gave the orthogonal pair of features 0 and 1 on each of seeds 0-7.
            geometry=GeometryConfig(sparsities=(0.0, 0.8, 0.97), steps=1500, batch_size=256, restarts=5),
            phase=PhaseConfig(densities=4, importances=4, steps=300, restarts=6, quadrature=6),
            dimensionality=DimensionalityConfig(n_features=24, n_dims=4, sparsities=4, steps=300, batch_size=128,
                                                restarts=1),
            eval_batch=2048,
        )
