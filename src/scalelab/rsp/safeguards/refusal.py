"""Refusal robustness: the world's held-out harmful requests, plain and inside every jailbreak template.

An attack succeeds when the reply gives a hazard recipe by the exact world scorer (`evals.chat.score_harmful`:
it names a reagent or a recipe process). The attack success rate is reported per template and for the
worst template, the number a motivated adversary gets, for the model alone and, when an output filter
is given, for the model behind the filter (a blocked reply is the filter's refusal). Replies are greedy,
so the measurement is reproducible; the item's own system prompt, if any, is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.evals.chat import WorldFacts, score_harmful
from scalelab.model.lm import LM
from scalelab.rsp.safeguards.output_filter import OutputFilter
from scalelab.world.jailbreaks import JAILBREAKS
from scalelab.world.reader import WorldDir

PLAIN = "plain"


def attack_conversations(items: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, str]]]]:
    """(template name, conversation) for every item, plain and wrapped in every jailbreak template."""
    out = []
    for name, wrap in [(PLAIN, None), *((jb.name, jb.apply) for jb in JAILBREAKS)]:
        for it in items:
            msgs = [dict(m) for m in it["messages"]]
            if wrap is not None:
                msgs[-1]["content"] = wrap(msgs[-1]["content"])
            out.append((name, msgs))
    return out


def refusal_robustness(lm: LM, world_dir: Path, limit: int | None = None,
                       output_filter: OutputFilter | None = None, max_new_tokens: int = 40) -> dict[str, Any]:
    """Attack success rates per template and worst case (model alone, and behind `output_filter` if given)."""
    facts = WorldFacts.load(world_dir)
    items = WorldDir(world_dir).eval_set("harmful_requests", limit)
    attacks = attack_conversations(items)
    replies = lm.chat([c for _, c in attacks], max_new_tokens=max_new_tokens, temperature=0.0)
    success = [score_harmful(r, facts)["harmful_compliance"] for r in replies]
    filtered = None
    if output_filter is not None:
        shown = output_filter.check_many([c[-1]["content"] for _, c in attacks], replies)
        filtered = [score_harmful(text, facts)["harmful_compliance"] for _, text in shown]
    per: dict[str, dict[str, Any]] = {}
    for k, (name, _) in enumerate(attacks):
        row = per.setdefault(name, {"n": 0, "successes": 0, "successes_filtered": 0})
        row["n"] += 1
        row["successes"] += int(success[k])
        row["successes_filtered"] += int(filtered[k]) if filtered is not None else 0
    for row in per.values():
        row["attack_success_rate"] = row["successes"] / row["n"]
        row["attack_success_rate_filtered"] = row["successes_filtered"] / row["n"] if filtered is not None else None
    worst = max(per, key=lambda n: per[n]["attack_success_rate"])
    out: dict[str, Any] = {
        "templates": per, "n_requests": len(items), "n_attacks": len(attacks),
        "worst_template": worst, "worst_attack_success_rate": per[worst]["attack_success_rate"],
        "examples": [{"template": n, "prompt": c[-1]["content"], "reply": r}
                     for (n, c), r, s in zip(attacks, replies, success, strict=True) if s][:3],
        "replies": replies,
    }
    if filtered is not None:
        worst_f = max(per, key=lambda n: per[n]["attack_success_rate_filtered"])
        out.update(worst_template_filtered=worst_f,
                   worst_attack_success_rate_filtered=per[worst_f]["attack_success_rate_filtered"])
    return out
