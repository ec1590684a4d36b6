"""Toy Models of Superposition (Elhage et al. 2022), reproduced on a CPU in under a minute.

`toy` trains stacks of x̂ = ReLU(WᵀW x + b) models on sparse synthetic features, `analysis` reads the
trained weights (represented features, their 2D geometry, the phase of a feature, dimensionality),
`experiments` runs the paper's three experiments and writes `results.json`, `plots` draws the figures
and `report` renders the report section.
"""

from scalelab.interp.superposition.config import (
    DimensionalityConfig,
    GeometryConfig,
    PhaseConfig,
    SuperpositionConfig,
)
from scalelab.interp.superposition.experiments import run_superposition, superposition_summary
from scalelab.interp.superposition.report import section_superposition

__all__ = ["DimensionalityConfig", "GeometryConfig", "PhaseConfig", "SuperpositionConfig", "run_superposition",
           "section_superposition", "superposition_summary"]
