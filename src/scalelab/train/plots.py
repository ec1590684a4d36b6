"""The ladder's training curves as a PNG for the report. matplotlib's Agg backend: no display needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from scalelab.layout import RunLayout
from scalelab.train.metrics import read_metrics


def plot_training_curves(models: list[dict[str, Any]], run_dir: Path, out_png: Path,
                         floor: float | None = None) -> Path | None:
    """Train and validation loss against tokens for every ladder model, with the entropy floor."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    drawn = False
    for m in models:
        rows = read_metrics(RunLayout(run_dir).rung(m["name"]))
        train = [(r["tokens"], r["loss"]) for r in rows if "loss" in r and "tokens" in r]
        if not train:
            continue
        # validation rows carry only the step; training rows give tokens per step
        per_step = train[-1][0] / max(1, next(r["step"] for r in reversed(rows) if "loss" in r))
        val = [(r["step"] * per_step, r["val_loss"]) for r in rows if "val_loss" in r]
        (line,) = ax.plot(*zip(*train, strict=True), alpha=0.5, lw=1,
                          label=f"{m['name']} train ({m['params'] / 1e6:.2f}M)")
        drawn = True
        if val:
            ax.plot(*zip(*val, strict=True), "o-", color=line.get_color(), ms=3, lw=1.5, label=f"{m['name']} val")
    if not drawn:
        plt.close(fig)
        return None
    if floor is not None:
        ax.axhline(floor, color="k", ls="--", lw=1, label=f"entropy floor {floor:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("Pretraining curves of the ladder")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return out_png
