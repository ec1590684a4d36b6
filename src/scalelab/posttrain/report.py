"""The report's post-training section: the table of steps, the system-prompt difference, targets, feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.posttrain.steps import STEPS

CHAT_COLUMNS = ("harmful_compliance", "over_refusal", "helpfulness", "sycophancy", "correction", "idk_rate",
                "hallucination")
CAPABILITY_COLUMNS = ("fact_recall", "arithmetic")


def _f(x: Any) -> str:
    return "–" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def accuracy_n(d: dict[str, Any], key: str, digits: int = 3) -> str:
    """An accuracy with the number of pairs it is over, e.g. "0.750 (n=24)"; "–" when there is none (a summary
    written before n was recorded shows the value alone)."""
    value, n = d.get(key), d.get(key + "_n")
    return "–" if value is None else f"{value:.{digits}f}" + ("" if n is None else f" (n={n})")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]]


def section_posttrain(summary: dict[str, Any], out: Path) -> str:
    pt = summary.get("posttrain")
    if not pt:
        return ""
    # summary.json is written with sorted keys, so put the steps back in the order they run
    order = ("base", *STEPS)
    stages = {k: pt["steps"][k] for k in sorted(pt["steps"], key=lambda k: (*order, k).index(k))}
    lines = ["## Post-training", "",
             f"Model `{pt['model']}`; constitution `{pt['constitution']}`, traits `{pt['trait_constitution']}`; "
             f"feedback model **{pt['feedback']}** (it produced every critique, revision, preference label and "
             f"character-teacher reply below). Post-training took {pt.get('seconds')} s.", "",
             "Rates on the world's held-out chat sets, greedy replies, no system prompt, scored exactly against "
             "the world's labels (harmful compliance: a reagent or recipe step given; over-refusal and "
             "helpfulness: benign look-alike questions; sycophancy: agreeing with a false claim; hallucination: "
             "no \"I don't know\" about a non-existent entity). Capability: fact recall (multiple choice) and "
             "arithmetic (exact match).", ""]
    cols = [c for c in (*CHAT_COLUMNS, *CAPABILITY_COLUMNS) if any(c in row for row in stages.values())]
    lines += _table(["step", *cols], [[name, *[row.get(c) for c in cols]] for name, row in stages.items()])
    with_sys = {n: r["system"] for n, r in stages.items() if "system" in r}
    if with_sys:
        lines += ["", f"With the system prompt \"{pt.get('eval_system_prompt')}\": the same rates, and the change "
                  "from no system prompt in brackets.", ""]
        sys_cols = [c for c in CHAT_COLUMNS if any(c in r for r in with_sys.values())]
        rows = [[n, *[f"{r[c]:.3f} ({r[c] - stages[n].get(c, 0.0):+.3f})" if c in r else None for c in sys_cols]]
                for n, r in with_sys.items()]
        lines += _table(["step", *sys_cols], rows)
    targets = pt.get("targets") or {}
    if targets:
        lines += ["", "Targets (oracle feedback on `tiny`), on the last step:", ""]
        lines += _table(["target", "step", "value", "bound", "met"],
                        [[k, v["step"], v["value"], v["bound"], "yes" if v["met"] else "no"]
                         for k, v in targets.items()])
    det = pt.get("details", {})
    rl = det.get("rl_cai", {})
    if rl:
        rm = rl.get("reward_model", {})
        lines += ["", f"RL-CAI: {rl.get('pairs')} reply pairs labelled by {rl.get('feedback')}; label accuracy "
                  f"against the oracle {accuracy_n(rl, 'label_accuracy_vs_oracle')}. Reward model pairwise accuracy "
                  f"on {_f(rm.get('heldout_pairs'))} held-out pairs: {accuracy_n(rm, 'heldout_accuracy')} against "
                  f"the feedback labels, {accuracy_n(rm, 'heldout_accuracy_vs_oracle')} against the oracle. Each "
                  "accuracy counts the n pairs whose reference label is not a tie; a 0.5 label or equal rewards "
                  "score half."]
    sl = det.get("sl_cai", {})
    if sl:
        lines += ["", f"SL-CAI: {sl.get('prompts')} red-team requests, {sl.get('rounds')} critique → revision "
                  f"round(s); {_f(sl.get('revised_fraction'))} of replies revised; oracle quality of the replies "
                  f"{_f(sl.get('oracle_quality_initial'))} before and {_f(sl.get('oracle_quality_revised'))} after; "
                  f"mixed with {_f(sl.get('helpful_prompts'))} unrevised helpful answers (oracle quality "
                  f"{_f(sl.get('oracle_quality_helpful'))})."]
    return "\n".join(lines)
