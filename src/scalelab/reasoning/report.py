"""The report's reasoning section: repeated vs fresh data, synthetic data and its recursion, and the tasks'
pass@k / majority@k per training step, with the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.reasoning.synthetic_report import synthetic_section
from scalelab.report.render import fmt, table


def _k(d: dict[str, Any] | None, k: str | None = None) -> Any:
    if not d:
        return None
    return d.get(k) if k is not None else d.get(max(d, key=int))


def _data_constrained(dc: dict[str, Any]) -> list[str]:
    ci = dc.get("r_star_ci") or [None, None]
    lines = ["### Repeated vs fresh data (Muennighoff et al. 2023)", "",
             f"d{dc['depth']} ({fmt(dc['params'])} parameters), U = {fmt(dc['unique_tokens'])} unique tokens, batch "
             f"{dc['batch_size']}. Fitted **R\\* = {fmt(dc['r_star'], 2)}** (95% bootstrap interval "
             f"[{fmt(ci[0], 2)}, {fmt(ci[1], 2)}]; the paper's ≈ 15.4).", ""]
    rows = [[e, v["tokens"], v["loss"], v["fresh_loss"], f"{v['loss_diff_pct']:+.2f}%", v["knowledge_gap"],
             v["fresh_knowledge_gap"]] for e, v in sorted(dc["epochs"].items(), key=lambda kv: float(kv[0]))]
    lines.append(table(["epochs", "tokens", "loss repeated", "loss fresh", "repeated − fresh", "knowledge gap repeated",
                        "knowledge gap fresh"], rows))
    return lines


def _tasks(r: dict[str, Any]) -> list[str]:
    scale = r.get("scale", {})
    lines = ["", "### Reasoning with verifiable rewards", "",
             f"Trained on `{scale.get('model')}`; {scale.get('problems_per_difficulty')} held-out problems per "
             f"difficulty, {scale.get('samples')} samples each. pass@k: unbiased estimator (Chen et al. 2021); "
             "majority@k: the most common parsed answer; harder: one more digit / hop / number than training.", ""]
    rows = []
    for task, models in r["tasks"].items():
        for name, m in models.items():
            kmax = max(m["pass_at_k"], key=int)
            rows.append([task, name, m["greedy"], _k(m["pass_at_k"], "1"), f"{_k(m['pass_at_k']):.3f} (k={kmax})",
                         f"{_k(m['majority_at_k']):.3f}", m["heldout_difficulty_greedy"],
                         m["heldout_difficulty_pass_at_1"], m["self_verification_agreement"]])
    lines.append(table(["task", "step", "greedy", "pass@1", "pass@k", "majority@k", "harder greedy", "harder pass@1",
                        "self-verification"], rows))
    for task, s in (r.get("grpo_seeds") or {}).items():
        if "delta_mean" in s:
            lines += ["", f"GRPO on {task} over seeds {s['seeds']}: pass@1 {fmt(s['mean'])} "
                      f"[{fmt(s['ci'][0])}, {fmt(s['ci'][1])}], {s['delta_mean']:+.3f} "
                      f"[{s['delta_ci'][0]:+.3f}, {s['delta_ci'][1]:+.3f}] over its start ({s['start']})."]
    for m in (r.get("compute_trade") or {}).get("matched", []):
        lines += ["", f"At equal inference FLOPs per problem, {m['small']} with k={m['k']} samples: majority@k "
                  f"{fmt(m['small_majority_at_k'])}, pass@k {fmt(m['small_pass_at_k'])}; {m['large']} answering once "
                  f"(greedy): {fmt(m['large_greedy'])}."]
    return lines


def _took(r: dict[str, Any]) -> str:
    """The stage's time: on a resumed run, this run's seconds plus the recorded seconds of the steps it reused."""
    t = r.get("timing")
    if not t:  # a summary from before the steps' times were read back: its figure is that run's wall clock
        return f"This run of the stage took {r.get('seconds')} s (steps reused from an earlier run not counted)."
    if not t["reused_steps"]:
        return f"The stage took {t['seconds']} s."
    return (f"The stage took {t['seconds']} s: {t['reused_steps']} of its {t['steps']} steps were made by an earlier "
            f"run and reused here ({t['reused_step_seconds']} s, as their artifacts recorded; runs trained side by "
            f"side count each), and this run took {t['run_seconds']} s.")


def section_reasoning(summary: dict[str, Any], out: Path) -> str:
    r = summary.get("reasoning")
    if not r:
        return ""
    lines = ["## Past the data wall, and reasoning", "", _took(r)]
    plots: list[str] = []
    if r.get("data_constrained"):
        lines += ["", *_data_constrained(r["data_constrained"])]
        plots += r["data_constrained"].get("plots", [])
    if r.get("synthetic"):
        lines += synthetic_section(r["synthetic"])
        plots += r["synthetic"].get("plots", [])
    if r.get("tasks"):
        lines += _tasks(r)
        plots += r.get("plots", [])
    lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines)
