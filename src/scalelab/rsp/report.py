"""The RSP section of the run report: determinations, forecast warnings, capability-vs-compute plot.

`section_rsp` renders `summary.json["rsp"]` (written by `rsp.stage.run_rsp`): a table of every assessed
model's ASL and per-threshold verdicts, a warning line for each threshold the 4×-compute forecast says
the next model may cross (before it happens), the cadence of comprehensive assessments along the ladder,
and one plot panel per threshold: the strongest-elicitation score of each model against training compute,
with the red line, the yellow line (the safety buffer shaded between them) and the forecast at 4× the
largest model's compute with its interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from scalelab.rsp.assess import CROSSED, EXPECTED_TO_CROSS, MAY_CROSS, forecast_cell, lines_cell
from scalelab.rsp.policy import HIGHER, asl_name

PLOT = "rsp_capabilities.png"
VERDICT_MARK = {"well below": "below", "within safety buffer": "buffer", CROSSED: "**CROSSED**"}


def _cell(r: dict[str, Any]) -> str:
    lo, hi = r["ci"]
    return f"{r['value']:.2f} [{lo:.2f}, {hi:.2f}] {r['elicitation']} — {VERDICT_MARK.get(r['verdict'], r['verdict'])}"


def _guards(m: dict[str, Any]) -> str:
    if not m["crossed"]:
        return "–"
    if m.get("safeguards_met") is None:
        return "not measured"
    return "met" if m["safeguards_met"] else "NOT met"


def section_rsp(summary: dict[str, Any], out: Path) -> str:
    rsp = summary.get("rsp")
    if not rsp or not rsp.get("models"):
        return ""
    pol, models = rsp["policy"], rsp["models"]
    ids = [t["id"] for t in pol["thresholds"]]
    lines = ["## Responsible Scaling Policy", "",
             f"Policy **{pol['name']}** (`{pol['source']}`, sha256 `{pol['sha256'][:12]}…`), baseline "
             f"{asl_name(pol['baseline_asl'])}. Every model below was assessed on the policy's capability evals "
             f"(Inspect AI tasks) under the elicitations listed in its capability report; each cell is the strongest "
             "elicitation's score with its 95% Wilson interval, and the verdict: crossed when the score reaches the "
             "red line, buffer when the interval's end toward more capability reaches the yellow line (≥ where "
             "higher is more capable, ≤ where lower is). Post-trained models carry their base model's training "
             "compute.", "",
             "| threshold | eval | red / yellow | requires |", "|---|---|---|---|"]
    lines += [f"| {t['id']}: {t['name']} | {t['eval']} ({t['metric']}) | "
              f"{lines_cell(t['red'], t['yellow'], t.get('direction', HIGHER))} | {asl_name(t['requires'])} |"
              for t in pol["thresholds"]]
    header = ["model", "compute (FLOPs)", "ASL", *ids, "safeguards", "report"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in models:
        by_id = {r["threshold"]: r for r in m["rows"]}
        compute = "–" if m["compute"] is None else f"{m['compute']:.3g}"
        lines.append("| " + " | ".join([m["name"] + ("" if m["kind"] == "ladder" else f" ({m['base']})"), compute,
                                        f"**{asl_name(m['asl'])}**", *[_cell(by_id[i]) for i in ids if i in by_id],
                                        _guards(m), f"`{m['report']}`"]) + " |")
    agents = rsp.get("agents") or []
    if agents:
        agent_ids = [t["id"] for t in pol["thresholds"]
                     if any(r["threshold"] == t["id"] for a in agents for r in a["rows"])]
        lines += ["", "Agent systems (the `computer` stage's strongest learned agent, on held-out tasks):", "",
                  "| agent | ASL | " + " | ".join(agent_ids) + " | report |", "|" + "---|" * (len(agent_ids) + 3)]
        for a in agents:
            by_id = {r["threshold"]: r for r in a["rows"]}
            lines.append(f"| {a['name']} | **{asl_name(a['asl'])}** | "
                         + " | ".join(_cell(by_id[i]) for i in agent_ids) + f" | `{a['report']}` |")
        for a in agents:
            for r in a["rows"]:
                warn = (r.get("forecast") or {}).get("outlook") in (EXPECTED_TO_CROSS, MAY_CROSS)
                lines.append(f"- {'**⚠ warning** ' if warn else ''}{a['name']}, {r['threshold']}, at "
                             f"{pol['compute_multiple']:g}× demonstrations: {forecast_cell(r.get('forecast'))}")
    lines += ["", *_forecast_lines(models, pol["compute_multiple"])]
    due = rsp.get("cadence") or []
    if due:
        steps = ", ".join(f"{c['name']} ({'due' if c['due'] else 'not due'}"
                          + ("" if c["ratio_to_last_due"] is None else f", {c['ratio_to_last_due']:.1f}× the last due")
                          + ")" for c in due)
        lines += ["", f"Cadence: a comprehensive assessment is due every {pol['compute_multiple']:g}× effective "
                  f"compute. Along the ladder: {steps}. (Every model was assessed here regardless.)"]
    png = plot_capabilities(rsp, out / PLOT)
    if png is not None:
        lines += ["", f"![capabilities against training compute]({png.name})"]
    return "\n".join(lines)


def _forecast_lines(models: list[dict[str, Any]], multiple: float) -> list[str]:
    """The forecast of the largest ladder model per threshold, with a warning where it reaches the red line."""
    ladder = [m for m in models if m["kind"] == "ladder" and m["compute"]]
    if not ladder:
        return []
    top = max(ladder, key=lambda m: m["compute"])
    out = [f"Forecast for the next model, at {multiple:g}× the compute of {top['name']} "
           f"({multiple * top['compute']:.3g} FLOPs):", ""]
    for r in top["rows"]:
        f = r.get("forecast")
        warn = bool(f) and f.get("outlook") in (EXPECTED_TO_CROSS, MAY_CROSS)
        out.append(f"- {'**⚠ warning** ' if warn else ''}{r['threshold']}: {forecast_cell(f)}")
    return out


def plot_capabilities(rsp: dict[str, Any], out_png: Path) -> Path | None:
    """One panel per threshold: score vs training compute, red and yellow lines, the 4×-compute forecast."""
    models = [m for m in rsp["models"] if m["compute"]]
    assessed = {r["threshold"] for m in models for r in m["rows"]}  # agent thresholds have no compute axis
    thresholds = [t for t in rsp["policy"]["thresholds"] if t["id"] in assessed]
    if not models or not thresholds:
        return None
    fig, axes = plt.subplots(1, len(thresholds), figsize=(4.2 * len(thresholds), 3.8), dpi=120, squeeze=False)
    multiple = rsp["policy"]["compute_multiple"]
    ladder = sorted((m for m in models if m["kind"] == "ladder"), key=lambda m: m["compute"])
    for ax, t in zip(axes[0], thresholds, strict=True):
        for kind, marker, color in (("ladder", "o", "tab:blue"), ("posttrained", "s", "tab:purple")):
            pts = [(m["compute"], r, m["name"]) for m in models if m["kind"] == kind
                   for r in m["rows"] if r["threshold"] == t["id"]]
            if not pts:
                continue
            # post-trained models share their base's compute: spread them a little so each stays visible
            xs = [x * (1.0 if kind == "ladder" else 1.1 ** (i + 1)) for i, (x, _, _) in enumerate(pts)]
            ys = [p[1]["value"] for p in pts]
            err = [[max(0.0, y - p[1]["ci"][0]) for y, p in zip(ys, pts, strict=True)],
                   [max(0.0, p[1]["ci"][1] - y) for y, p in zip(ys, pts, strict=True)]]
            ax.errorbar(xs, ys, yerr=err, fmt=marker, color=color, ms=5, capsize=3, alpha=0.85,
                        label="ladder" if kind == "ladder" else "post-trained (pipeline order, right of base)")
            if kind == "ladder":
                ax.plot(xs, ys, "-", color=color, lw=1, alpha=0.5)
                for x, y, p in zip(xs, ys, pts, strict=True):
                    ax.annotate(p[2], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if ladder:
            top = ladder[-1]
            row = next((r for r in top["rows"] if r["threshold"] == t["id"]), None)
            f = (row or {}).get("forecast") or {}
            if "expected" in f:
                lo, hi = f["interval"]
                # a bootstrap percentile interval need not contain the point forecast: clip the bars at zero
                ax.errorbar([f["compute"]], [f["expected"]],
                            yerr=[[max(0.0, f["expected"] - lo)], [max(0.0, hi - f["expected"])]],
                            fmt="D", color="k", mfc="white", capsize=4, label=f"forecast at {multiple:g}×")
                ax.plot([top["compute"], f["compute"]], [row["value"], f["expected"]], ":", color="k", lw=1)
        ax.axhline(t["red"], color="red", lw=1.5, label=f"red line {t['red']:g}")
        ax.axhline(t["yellow"], color="gold", lw=1.5, label=f"yellow line {t['yellow']:g}")
        ax.axhspan(t["yellow"], t["red"], color="gold", alpha=0.12)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # a span under one decade labels every minor tick
        ax.set_xlabel("training compute (FLOPs)")
        ax.set_ylabel(f"{t['eval']} {t['metric']}")
        ax.set_title(f"{t['id']} (→ {asl_name(t['requires'])})", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return out_png
