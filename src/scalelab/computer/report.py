"""The computer section of the report: per-agent success with intervals, injection metrics, the curves, a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _ci(ci: list[float] | None) -> str:
    return "–" if not ci else f"{ci[0]:.1%}–{ci[1]:.1%}"


def render_section(summary: dict[str, Any], out: Path) -> str:
    c = summary.get("computer")
    if not c:
        return ""
    rows = ["| agent | train success | 95% CI | held-out success | 95% CI | steps/s | utility under attack | "
            "attack success | with guard: utility | with guard: attack success |", "|" + " --- |" * 10]
    for name, a in c["agents"].items():
        d = a.get("defended") or {}
        rows.append(f"| {name} | {_pct(a['success_rate'])} | {_ci(a['ci95'])} | {_pct(a['heldout_success_rate'])} | "
                    f"{_ci(a['heldout_ci95'])} | {a['steps_per_second']} | {_pct(a['utility_under_attack'])} | "
                    f"{_pct(a['attack_success_rate'])} | {_pct(d.get('utility_under_attack'))} | "
                    f"{_pct(d.get('attack_success_rate'))} |")
    lines = ["## Computer use", "",
             f"{c['tasks']} MiniWoB++ tasks ({c['task_set']}, backend {c['backend']}, "
             f"{'sandboxed' if c['sandboxed'] else 'not sandboxed'}), {c['episodes']} episode(s) per task and split; "
             f"{c['cpu']}, load average {c['load_average_start']}→{c['load_average_end']}, {c['seconds']} s.", "",
             *rows, ""]
    p = c.get("pixel")
    if p:
        lines += [f"Pixel agent: {p['params']:,} parameters (width {p['width']}), behaviour cloning on "
                  f"{p['samples']} steps of {p['demo_episodes']} oracle episodes ({p['demos_per_task']}/task, "
                  f"collected in {p['collect_seconds']} s), {p['steps']} updates in {p['train_seconds']} s.", ""]
    if c.get("dropped"):
        lines += ["Dropped (the oracle could not solve them reliably): "
                  + "; ".join(f"`{k}` — {v}" for k, v in c["dropped"].items()) + ".", ""]
    png = _plot(c, out)
    if png:
        lines += [f"![computer use]({png})", ""]
    return "\n".join(lines)


def _plot(c: dict[str, Any], out: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = c.get("agents", {})
    if not agents:
        return None
    curve = c.get("pixel_curve") or {}
    n = 1 + sum(bool(curve.get(k)) for k in ("demos", "params"))
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.2), squeeze=False)
    ax = axes[0][0]
    names = list(agents)
    held = [agents[k]["heldout_success_rate"] or 0 for k in names]
    lo = [h - (agents[k]["heldout_ci95"] or [h, h])[0] for h, k in zip(held, names, strict=True)]
    hi = [(agents[k]["heldout_ci95"] or [h, h])[1] - h for h, k in zip(held, names, strict=True)]
    ax.bar(names, held, yerr=[lo, hi], capsize=3)
    ax.set_ylim(0, 1)
    ax.set_title("held-out success (95% CI)")
    for i, key in enumerate(k for k in ("demos", "params") if curve.get(k)):
        a = axes[0][i + 1]
        xs, ys = zip(*curve[key], strict=True)
        a.plot(xs, ys, "o-")
        a.set_xscale("log")
        a.set_ylim(0, 1)
        a.set_xlabel("demonstrations per task" if key == "demos" else "policy parameters")
        a.set_title("pixel agent, held-out success")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "computer.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
