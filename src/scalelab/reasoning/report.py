"""The report's reasoning section: repeated vs fresh data, synthetic data and its recursion, and the tasks'
pass@k / majority@k per training step, with the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _synthetic(syn: dict[str, Any]) -> list[str]:
    arms = syn["arms"]
    lines = ["", "### Synthetic data, verified and not", "",
             f"d{syn['depth']} trained {syn['steps']} steps on U = {fmt(syn['unique_tokens'])} real tokens plus "
             f"{fmt(syn['synthetic_tokens'])} more per arm, written by `{syn['writer']}`. Gap closed = share of the "
             "repeat → fresh loss gap an arm closes.", ""]
    lines.append(table(["arm", "loss", "knowledge gap", "distinct n-grams added", "gap closed",
                        "documents passing the checker"],
                       [[name, a["loss"], a["knowledge_gap"], a.get("distinct_ngrams"), a.get("gap_closed"),
                         a.get("pass_rate")] for name, a in arms.items()]))
    real = syn.get("real_text") or {}
    lines += ["", f"Recursion (real text: distinct n-grams {fmt(real.get('distinct_ngrams'))}, tail entities named "
              f"{fmt(real.get('tail_coverage'))}):", ""]
    rows = [[mode, g["generation"], g["loss"], g["knowledge_gap"], g["distinct_ngrams"], g["tail_coverage"],
             g.get("pass_rate")] for mode, gens in syn["recursion"].items() for g in gens]
    lines.append(table(["mode", "generation", "loss", "knowledge gap", "distinct n-grams written",
                        "tail entities named", "passing the checker"], rows))
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


def section_reasoning(summary: dict[str, Any], out: Path) -> str:
    r = summary.get("reasoning")
    if not r:
        return ""
    lines = ["## Past the data wall, and reasoning", "", f"The stage took {r.get('seconds')} s."]
    plots: list[str] = []
    if r.get("data_constrained"):
        lines += ["", *_data_constrained(r["data_constrained"])]
        plots += r["data_constrained"].get("plots", [])
    if r.get("synthetic"):
        lines += _synthetic(r["synthetic"])
        plots += r["synthetic"].get("plots", [])
    if r.get("tasks"):
        lines += _tasks(r)
        plots += r.get("plots", [])
    lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines)
