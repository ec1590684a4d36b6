"""The report section for the superposition reproduction: tables of what each experiment found, and its figures.

`section_superposition` takes the full `results.json` dict and the report's directory; figures that
live elsewhere (the command's own output folder) are copied beside the report so its links resolve.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _figure(results: dict[str, Any], key: str, out: Path) -> str | None:
    """The figure's name relative to `out`, copying it there from the results' folder when needed."""
    name = results.get("figures", {}).get(key)
    if not name:
        return None
    target = Path(out) / name
    source = Path(results.get("out_dir", out)) / name
    if not target.exists() and source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return name if target.exists() else None


def _geometry_lines(geo: dict[str, Any]) -> list[str]:
    rows = []
    for r in geo["per_sparsity"]:
        rep = r["features_represented"]
        dims = [r["dimensionality"][i] for i in rep["which"]]
        rows.append([f"{r['sparsity']:g}", f"{rep['count']} {rep['which']}", r["geometry"],
                     ", ".join(f"{g:.0f}°" for g in r["neighbour_gaps_deg"]) or "–",
                     f"{np.mean(dims):.2f}" if dims else "–"])
    pent = geo["pentagon_sparsity"]
    return [
        f"### (a) {geo['n_features']} features in {geo['n_dims']} dimensions, importance {geo['importance'][1]:g}^i",
        "",
        _table(["sparsity S", "represented (‖W_i‖ > threshold)", "geometry (from W)", "neighbour gaps",
                "mean D_i"], rows), "",
        (f"The pentagon holds from S = {pent:g} on (every sparser setting of the sweep)." if pent is not None
         else "No sparsity of the sweep ends in a pentagon."),
    ]


def _phase_lines(phase: dict[str, Any]) -> list[str]:
    counts = phase["counts"]
    bound = [[f"{r:.3g}", "–" if d is None else f"{d:.3g}"]
             for r, d in zip(phase["relative_importances"], phase["superposition_max_density"], strict=True)]
    return [
        "### (b) Phase diagram: 2 features in 1 dimension", "",
        f"{phase['shape'][0]} relative importances × {phase['shape'][1]} densities; the second feature is "
        + ", ".join(f"{p} in {counts[p]}" for p in phase["phases"]) + " cells.", "",
        "Highest density at which the second feature is in superposition, per relative importance:", "",
        _table(["relative importance", "max density in superposition"], bound),
    ]


def _dimensionality_lines(dim: dict[str, Any]) -> list[str]:
    rows = []
    for r in dim["per_sparsity"]:
        rep = r["features_represented"]["which"]
        med = float(np.median([r["dimensionality"][i] for i in rep])) if rep else float("nan")
        rows.append([f"{r['inverse_density']:.2f}", len(rep), f"{r['dims_per_feature']:.3f}", f"{med:.3f}",
                     f"{r['represented_near_sticky']} of {len(rep)}"])
    st, tight = dim["sticky"], dim["sticky_tight"]
    per = ", ".join(f"{k}: {v}" for k, v in st["per_fraction"].items())
    return [
        f"### (c) Feature dimensionality, n = {dim['n_features']}, m = {dim['n_dims']}, uniform importance", "",
        _table(["1/(1−S)", "represented", "m / ‖W‖²_F", "median D_i (represented)",
                f"represented within ±{st['window']} of a sticky fraction"], rows), "",
        f"{st['fraction']:.1%} of represented features ({st['within']}/{st['features']}, all sparsities) sit "
        f"within ±{st['window']} of a sticky fraction ({per}); a dimensionality spread uniformly over [0, 1] "
        f"would score {st['chance']:.1%}. Within ±{tight['window']}: {tight['fraction']:.1%} "
        f"(chance {tight['chance']:.1%}).",
    ]


def section_superposition(results: dict[str, Any], out: Path) -> str:
    """Markdown for the report: the three experiments' tables and figures (figures copied into `out`)."""
    if not results:
        return ""
    lines = ["## Interpretability: toy models of superposition", "",
             f"A reproduction of {results['paper']} on the CPU "
             f"({results.get('seconds', {}).get('total', float('nan')):.0f} s for all three experiments). "
             "A feature is represented when ‖W_i‖ > "
             f"{results['config']['represented_norm']}; each setting keeps the lowest-loss of several restarts.", ""]
    for key, render in (("geometry", _geometry_lines), ("phase", _phase_lines),
                        ("dimensionality", _dimensionality_lines)):
        lines += render(results[key])
        png = _figure(results, key, out)
        if png:
            lines += ["", f"![superposition {key}]({png})"]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
