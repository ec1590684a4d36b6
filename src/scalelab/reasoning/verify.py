"""Self-verification: can a model tell a right answer from a wrong one, and does checking then revising help?

The world writes verification traces for SFT: asked to check a proposed answer (`rollout.verify_question`),
the reply works the problem again, gives the answer it computed, and states a verdict::

    What is 347+58?
    Proposed answer: 406
    Check it.
    ---
    347+58: 7+8+0=15, 5  ...  3+0: 3+0+1=4, 405
    Answer: 405
    Verdict: wrong

`measure_verification` asks a trained model to check (a) its own greedy answers and (b) planted wrong answers
(`Task.wrong_answer`), and counts how often its verdict agrees with the checker; a missing or malformed verdict
disagrees. "Check then revise" answers greedily, asks the model to check that answer, and when the verdict is
"wrong" takes the verification's own answer instead; its accuracy is reported beside the plain answer's.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from scalelab.model.lm import LM
from scalelab.reasoning.rollout import sample, verify_question
from scalelab.reasoning.tasks import Problem, Task, answer_of
from scalelab.reasoning.tasks.base import ANSWER

VERDICT = re.compile(r"^Verdict: (right|wrong)$", re.MULTILINE)


def verification_reply(task: Task, problem: Problem, proposed: str, rng: random.Random,
                       mistake: bool = False) -> str:
    """The world's check of `proposed`: the worked steps, the verdict, and the computed answer."""
    verdict = "right" if task.check(problem, f"{ANSWER}{proposed}") else "wrong"
    # the verdict right after the computed answer: what it compares against the proposed one is one line up
    return f"{task.steps(problem, rng, mistake)}\n{ANSWER}{problem.answer}\nVerdict: {verdict}"


def verdict_of(reply: str) -> str | None:
    found = VERDICT.findall(reply)
    return found[0] if len(found) == 1 else None


def measure_verification(lm: LM, task: Task, problems: Sequence[Problem], *, max_new_tokens: int, seed: int = 0,
                         batch_size: int = 256) -> dict[str, Any]:
    """Verdict agreement with the checker on own and planted answers, and check-then-revise accuracy."""
    rng = random.Random(f"scalelab-verify:{seed}")
    own = sample(lm, [p.question for p in problems], 1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed,
                 batch_size=batch_size).texts
    own_answers = [answer_of(r[0]) for r in own]
    planted = [task.wrong_answer(p, rng) for p in problems]
    asks = [(p, a) for p, a in zip(problems, own_answers, strict=True) if a is not None]
    asks += list(zip(problems, planted, strict=True))
    checks = sample(lm, [verify_question(p.question, a) for p, a in asks], 1, temperature=0.0,
                    max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size).texts
    n_own = len(asks) - len(problems)
    agree, malformed = [], 0
    for (p, a), reply in zip(asks, checks, strict=True):
        verdict = verdict_of(reply[0])
        malformed += verdict is None
        agree.append(verdict is not None and (verdict == "right") == task.check(p, f"{ANSWER}{a}"))
    # check then revise: a "wrong" verdict on the model's own answer swaps in the verification's answer
    first = [task.check(p, r[0]) for p, r in zip(problems, own, strict=True)]
    revised = list(first)
    changed = 0
    own_checks = iter(checks[:n_own])
    for i, (p, a) in enumerate(zip(problems, own_answers, strict=True)):
        if a is None:
            continue
        reply = next(own_checks)[0]
        new = answer_of(reply)
        if verdict_of(reply) == "wrong" and new is not None and new != a:
            revised[i] = task.check(p, f"{ANSWER}{new}")
            changed += 1
    n = len(problems)
    return {"agreement": sum(agree) / max(1, len(agree)),
            "agreement_own": sum(agree[:n_own]) / max(1, n_own),
            "agreement_planted": sum(agree[n_own:]) / max(1, len(agree) - n_own),
            "verdict_malformed": malformed / max(1, len(agree)), "n_own": n_own, "n_planted": len(agree) - n_own,
            "answer_accuracy": sum(first) / max(1, n), "revised_accuracy": sum(revised) / max(1, n),
            "revised_changed": changed, "n": n}
