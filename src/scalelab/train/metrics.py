"""Where a run's numbers go: `metrics.jsonl` (one JSON object per line) and TensorBoard (`tb/`).

On resume the JSONL file is cut back to the checkpoint's step first: the killed run may have
logged steps past its last checkpoint, and those steps are about to be trained again. The result
is a file identical in its losses to an uninterrupted run's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scalelab.artifacts import atomic_write_text

METRICS = "metrics.jsonl"


class MetricsLog:
    def __init__(self, out_dir: Path, enabled: bool = True, resume_step: int | None = None) -> None:
        self.path = Path(out_dir) / METRICS
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        elif self.path.is_file():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and _step_of(line) <= resume_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        from torch.utils.tensorboard import SummaryWriter  # imported here: it is slow to import

        self._tb = SummaryWriter(str(Path(out_dir) / "tb"), purge_step=resume_step)

    def log(self, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        for key, value in values.items():
            if isinstance(value, int | float):
                self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, ValueError):
        return 1 << 62  # a half-written last line from a kill: drop it


def read_metrics(out_dir: Path) -> list[dict[str, Any]]:
    """The rows of `out_dir/metrics.jsonl` ([] if absent); a last line cut by a kill is skipped."""
    path = Path(out_dir) / METRICS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
