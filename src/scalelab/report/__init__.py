"""Report rendering: `summary.json`, `report.md`, `report.html` and PNG plots from a run's results."""

from scalelab.report.render import write_report

__all__ = ["write_report"]
