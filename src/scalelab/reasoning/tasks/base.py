"""What a verifiable reasoning task is: problems with an exact answer, a checker, traces, and two disjoint splits.

A `Problem` is one question a model answers in its own words; its reply must end with one line
`Answer: <answer>`. `Task.grade` reads that line and nothing else, so a reply is *malformed* when it has no
answer line, more than one, or an answer that does not parse as the task's kind of answer, and *wrong* when
it parses but is not right; only *correct* earns a reward. A trace is the reply the world writes for a
problem: the worked steps (a scratchpad, a chain of facts, a search), optionally with one step done wrong,
noticed and redone (`MISTAKE_CHECK`), and ending with the answer line.

Every task splits its instances by a rule on the instance itself (`is_heldout`), never by position in a
list, so a held-out problem can never be drawn into training data, whatever the seed or the count. Each
task has a difficulty dial (digits, hops, numbers); the evaluation also asks a *harder* difficulty than
training ever shows.
"""

from __future__ import annotations

import hashlib
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scalelab.errors import InputError

ANSWER = "Answer: "
ANSWER_LINE = re.compile(r"^Answer: (.*)$", re.MULTILINE)
MISTAKE_CHECK = " wait, "  # what a trace writes after a wrong step before redoing it
SPLITS = ("train", "heldout")
CORRECT, WRONG, MALFORMED = "correct", "wrong", "malformed"
HOLDOUT_MOD, HOLDOUT_RESIDUE = 8, 3  # one instance in eight is held out (the world's arithmetic rule's rate)


@dataclass(frozen=True)
class Problem:
    """One task instance: the question a user asks, its exact answer, and what the task needs to check it."""

    task: str
    key: str  # the instance's identity: equal keys are the same problem
    difficulty: int
    question: str
    answer: str
    data: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "key": self.key, "difficulty": self.difficulty, "question": self.question,
                "answer": self.answer, "data": self.data}


def answer_of(reply: str) -> str | None:
    """The text of the reply's one answer line, or None when it has none or several (a malformed reply)."""
    found = ANSWER_LINE.findall(reply)
    return found[0].strip() if len(found) == 1 else None


def stable_bucket(key: str, mod: int = HOLDOUT_MOD) -> int:
    """A bucket of `key` that does not depend on the Python process (`hash` is salted per process)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % mod


class Task(ABC):
    """A family of verifiable problems (see the module docstring)."""

    name: str = ""
    unit: str = ""  # what the difficulty counts: digits, hops, numbers

    def __init__(self, train_difficulties: Sequence[int], harder: int) -> None:
        if not train_difficulties:
            raise InputError(f"{self.name}: no training difficulties given; pass at least one {self.unit} count")
        bad = [d for d in [*train_difficulties, harder] if d < self.min_difficulty()]
        if bad:
            raise InputError(f"{self.name}: difficulty {bad[0]} is below the smallest, {self.min_difficulty()} "
                             f"{self.unit}")
        if harder <= max(train_difficulties):
            raise InputError(f"{self.name}: the held-out harder difficulty ({harder} {self.unit}) must exceed every "
                             f"training difficulty ({max(train_difficulties)})")
        self.train_difficulties = tuple(sorted(set(train_difficulties)))
        self.harder = harder

    # --- what each task defines
    def min_difficulty(self) -> int:
        return 1

    @abstractmethod
    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        """One problem of this difficulty drawn from `rng` (either split)."""

    @abstractmethod
    def is_heldout(self, problem: Problem) -> bool:
        """Whether the problem belongs to the held-out split (a rule on the instance)."""

    @abstractmethod
    def parse(self, problem: Problem, answer: str) -> Any:
        """The answer text as a value of the task's kind, or None when it does not parse."""

    @abstractmethod
    def is_right(self, problem: Problem, value: Any) -> bool:
        """Whether a parsed answer is right."""

    @abstractmethod
    def steps(self, problem: Problem, rng: random.Random, mistake: bool) -> str:
        """The worked steps for a problem (no answer line); with `mistake`, one step done wrong, noticed and
        redone."""

    @abstractmethod
    def wrong_answer(self, problem: Problem, rng: random.Random) -> str:
        """A well-formed answer that is wrong: what a plausible slip gives (to plant in verification)."""

    def vote_key(self, problem: Problem, value: Any) -> Any:
        """What a parsed answer votes for in majority@k: answers with equal keys are the same answer."""
        return value

    # --- shared behaviour
    def grade(self, problem: Problem, reply: str) -> str:
        """`CORRECT`, `WRONG` or `MALFORMED` (see the module docstring)."""
        text = answer_of(reply)
        if text is None:
            return MALFORMED
        value = self.parse(problem, text)
        if value is None:
            return MALFORMED
        return CORRECT if self.is_right(problem, value) else WRONG

    def check(self, problem: Problem, reply: str) -> bool:
        """The reward: whether the reply's answer is right."""
        return self.grade(problem, reply) == CORRECT

    def trace(self, problem: Problem, rng: random.Random, mistake: bool = False) -> str:
        """The reply the world writes: the worked steps, then the answer line."""
        return f"{self.steps(problem, rng, mistake)}\n{ANSWER}{problem.answer}"

    def direct(self, problem: Problem) -> str:
        """The reply without working: the answer line alone (the direct-answer baseline's format)."""
        return f"{ANSWER}{problem.answer}"

    def difficulties(self) -> tuple[int, ...]:
        """Every difficulty evaluated: the training ones, then the held-out harder one."""
        return (*self.train_difficulties, self.harder)

    def problems(self, split: str, difficulty: int, n: int, seed: int) -> list[Problem]:
        """`n` distinct problems of one split and difficulty, the same for the same arguments (fewer when the
        difficulty has fewer distinct instances)."""
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        rng = random.Random(f"scalelab-reasoning:{self.name}:{split}:{difficulty}:{seed}")
        want_heldout = split == "heldout"
        out: dict[str, Problem] = {}
        tries = 0
        while len(out) < n and tries < 50 * n + 1000:
            tries += 1
            p = self.sample(rng, difficulty)
            if self.is_heldout(p) == want_heldout:
                out.setdefault(p.key, p)
        return list(out.values())

    def mixed(self, split: str, n: int, seed: int, difficulties: Sequence[int] | None = None) -> list[Problem]:
        """`n` problems spread evenly over `difficulties` (default: the training ones), interleaved."""
        diffs = tuple(difficulties or self.train_difficulties)
        per = [self.problems(split, d, -(-n // len(diffs)), seed) for d in diffs]
        out = [p for group in zip(*per, strict=False) for p in group]
        # a difficulty with few distinct instances runs out first: the others fill the rest
        out += [p for group in per for p in group[min(len(g) for g in per):]]
        return out[:n]
