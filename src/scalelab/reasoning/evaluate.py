"""Test-time compute on held-out problems: greedy accuracy, pass@k and majority@k per difficulty.

For every difficulty the task evaluates (its training ones and the held-out harder one), `problems` held-out
problems are answered greedily once and sampled `max(ks)` times at `temperature`; each reply is graded by
the task's checker. pass@k uses the unbiased estimator, majority@k votes over parsed answers
(`reasoning.passk`), each with a bootstrap interval over problems. The pooled figures average over the
training difficulties' problems; `heldout_difficulty_*` are the harder difficulty's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scalelab.model.lm import LM
from scalelab.reasoning.config import PassKConfig
from scalelab.reasoning.passk import bootstrap_interval, majority_at_k, pass_at_k
from scalelab.reasoning.rollout import sample
from scalelab.reasoning.tasks import MALFORMED, Problem, Task, answer_of


def vote(task: Task, problem: Problem, reply: str) -> Any:
    """The vote a reply casts for majority@k: its parsed answer's key, or None (malformed: it abstains)."""
    text = answer_of(reply)
    value = None if text is None else task.parse(problem, text)
    return None if value is None else task.vote_key(problem, value)


def right_vote(task: Task, problem: Problem) -> Any:
    return vote(task, problem, f"Answer: {problem.answer}")


def score_samples(task: Task, problems: Sequence[Problem], texts: Sequence[Sequence[str]], ks: Sequence[int],
                  n_boot: int, seed: int) -> dict[str, Any]:
    """pass@k, majority@k (with intervals), the malformed share and per-problem right counts of sampled replies."""
    n = min(len(t) for t in texts)
    ks = [k for k in ks if k <= n]
    grades = [[task.grade(p, r) for r in replies] for p, replies in zip(problems, texts, strict=True)]
    right = [sum(g == "correct" for g in gs) for gs in grades]
    out: dict[str, Any] = {"samples_per_problem": n, "right_per_problem": right,
                           "malformed": sum(g == MALFORMED for gs in grades for g in gs) / max(1, n * len(problems)),
                           "pass_at_k": {}, "pass_at_k_ci": {}, "majority_at_k": {}, "majority_at_k_ci": {}}
    for k in ks:
        per = [pass_at_k(n, c, k) for c in right]
        maj = [majority_at_k([vote(task, p, r) for r in replies], right_vote(task, p), k, seed=seed + i)
               for i, (p, replies) in enumerate(zip(problems, texts, strict=True))]
        out["pass_at_k"][str(k)] = sum(per) / len(per)
        out["pass_at_k_ci"][str(k)] = list(bootstrap_interval(per, n_boot, seed))
        out["majority_at_k"][str(k)] = sum(maj) / len(maj)
        out["majority_at_k_ci"][str(k)] = list(bootstrap_interval(maj, n_boot, seed))
    return out


def evaluate_task(lm: LM, task: Task, cfg: PassKConfig, *, max_new_tokens: int, seed: int = 0,
                  difficulties: Sequence[int] | None = None, progress: bool = False) -> dict[str, Any]:
    """Greedy accuracy and the pass@k / majority@k curves per difficulty (see the module docstring)."""
    ks = sorted(set(cfg.ks) | {1})  # pass@1 is always reported (the held-out difficulty's headline)
    n = max(ks)
    by_difficulty: dict[str, Any] = {}
    pooled: dict[str, list[Any]] = {"greedy": [], "right": [], "texts": [], "problems": []}
    tokens = 0
    for d in difficulties or task.difficulties():
        problems = task.problems("heldout", d, cfg.problems, seed)
        questions = [p.question for p in problems]
        greedy = sample(lm, questions, 1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed,
                        batch_size=cfg.batch_size)
        sampled = sample(lm, questions, n, temperature=cfg.temperature, max_new_tokens=max_new_tokens, seed=seed,
                         batch_size=cfg.batch_size, progress=progress, desc=f"{task.name} d={d}")
        tokens += greedy.tokens + sampled.tokens
        greedy_right = [task.check(p, t[0]) for p, t in zip(problems, greedy.texts, strict=True)]
        entry = score_samples(task, problems, sampled.texts, ks, cfg.bootstrap, seed)
        entry.update(n_problems=len(problems), greedy=sum(greedy_right) / len(problems),
                     greedy_ci=list(bootstrap_interval([float(g) for g in greedy_right], cfg.bootstrap, seed)),
                     greedy_malformed=sum(task.grade(p, t[0]) == MALFORMED
                                          for p, t in zip(problems, greedy.texts, strict=True)) / len(problems),
                     mean_reply_tokens=sampled.tokens / max(1, len(problems) * n),
                     example=greedy.texts[0][0] if problems else "")
        by_difficulty[str(d)] = entry
        if d in task.train_difficulties:
            pooled["greedy"] += greedy_right
            pooled["texts"] += sampled.texts
            pooled["problems"] += problems
    overall = score_samples(task, pooled["problems"], pooled["texts"], ks, cfg.bootstrap, seed)
    harder = by_difficulty.get(str(task.harder), {})
    return {"difficulties": {"train": list(task.train_difficulties), "harder": task.harder, "unit": task.unit},
            "greedy": sum(pooled["greedy"]) / max(1, len(pooled["greedy"])),
            "pass_at_k": overall["pass_at_k"], "pass_at_k_ci": overall["pass_at_k_ci"],
            "majority_at_k": overall["majority_at_k"], "majority_at_k_ci": overall["majority_at_k_ci"],
            "malformed": overall["malformed"],
            "heldout_difficulty_pass_at_1": (harder.get("pass_at_k") or {}).get("1"),
            "heldout_difficulty_greedy": harder.get("greedy"),
            "by_difficulty": {d: {k: v for k, v in e.items() if k != "right_per_problem"}
                              for d, e in by_difficulty.items()},
            "samples_per_problem": n, "temperature": cfg.temperature, "generated_tokens": tokens}
