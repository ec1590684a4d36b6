"""Countdown: reach a target from given numbers with + − × ÷, each number used exactly once.

A problem is `numbers` (its difficulty: how many) drawn from 1..`max_number` and a target made by combining
them left to right with random operations whose every intermediate result is a positive whole number (so
every problem has at least one solution), kept to at most `max_target`. The checker accepts any expression
(`tasks.expression`) that uses the given numbers exactly once each and equals the target exactly; other
solutions than the generator's count. Instances are held out by a stable hash of (sorted numbers, target).

The world's trace is a search with backtracking, in the spirit of Gandhi et al. (2024, "Stream of Search"):
some left-to-right attempts that miss, each closed with `no`, then the one that reaches the target (`yes`),
then the answer as one expression::

    Make 26 from 3, 7, 5.
    3+7=10, 10*5=50. no
    3*7=21, 21+5=26. yes
    Answer: (3*7)+5

A mistake trace miscomputes one step of the final attempt, notices (`wait,`) and redoes it.
"""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction
from typing import Any

from scalelab.reasoning.tasks.base import HOLDOUT_RESIDUE, MISTAKE_CHECK, Problem, Task, stable_bucket
from scalelab.reasoning.tasks.expression import ParseError, evaluate

OPS = ("+", "-", "*", "/")
Chain = list[tuple[int, str, int, int]]  # (left, op, right, result) per step


def step(left: int, op: str, right: int) -> int | None:
    """The step's result when it is a positive whole number, else None."""
    if op == "+":
        return left + right
    if op == "-":
        return left - right if left > right else None
    if op == "*":
        return left * right
    return left // right if right > 1 and left % right == 0 else None


def random_chain(rng: random.Random, numbers: list[int]) -> Chain | None:
    """Combine a random order of `numbers` left to right with random valid operations (None: a dead end)."""
    order = numbers[:]
    rng.shuffle(order)
    value, chain = order[0], []
    for x in order[1:]:
        ops = [op for op in OPS if step(value, op, x) is not None]
        if not ops:
            return None
        op = rng.choice(ops)
        result = step(value, op, x)
        chain.append((value, op, x, result))  # type: ignore[arg-type]
        value = result  # type: ignore[assignment]
    return chain


def chain_text(chain: Chain) -> str:
    return ", ".join(f"{a}{op}{b}={r}" for a, op, b, r in chain)


def chain_expression(first: int, chain: Chain) -> str:
    expr = str(first)
    for k, (_, op, b, _) in enumerate(chain):
        expr = f"({expr}){op}{b}" if k else f"{expr}{op}{b}"
    return expr


class Countdown(Task):
    name = "countdown"
    unit = "numbers"

    def __init__(self, train_difficulties: tuple[int, ...] = (2, 3), harder: int = 4, max_number: int = 10,
                 max_target: int = 100, max_misses: int = 2) -> None:
        super().__init__(train_difficulties, harder)
        self.max_number, self.max_target, self.max_misses = max_number, max_target, max_misses

    def min_difficulty(self) -> int:
        return 2

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        while True:
            numbers = [rng.randint(1, self.max_number) for _ in range(difficulty)]
            chain = random_chain(rng, numbers)
            if chain is None or not 1 <= chain[-1][3] <= self.max_target:
                continue
            target = chain[-1][3]
            first = chain[0][0]
            return Problem(self.name, f"{sorted(numbers)}->{target}", difficulty,
                           f"Make {target} from {', '.join(map(str, numbers))}.",
                           chain_expression(first, chain), {"numbers": numbers, "target": target, "chain": chain})

    def is_heldout(self, problem: Problem) -> bool:
        return stable_bucket(problem.key) == HOLDOUT_RESIDUE

    def parse(self, problem: Problem, answer: str) -> Any:
        try:
            return evaluate(answer)
        except ParseError:
            return None

    def is_right(self, problem: Problem, value: Any) -> bool:
        result, used = value
        return Counter(used) == Counter(problem.data["numbers"]) and result == Fraction(problem.data["target"])

    def vote_key(self, problem: Problem, value: Any) -> Any:
        result, used = value
        return result, tuple(sorted(used))  # every way of reaching the same value from the same numbers

    def wrong_answer(self, problem: Problem, rng: random.Random) -> str:
        numbers = list(problem.data["numbers"])
        for _ in range(100):
            miss = random_chain(rng, numbers)
            if miss is not None and miss[-1][3] != problem.data["target"]:
                return chain_expression(miss[0][0], miss)
        # every order and operation reaches the target (e.g. 1+1 from two ones): change one number instead
        return problem.answer.replace(str(numbers[0]), str(numbers[0] + 1), 1)

    def steps(self, problem: Problem, rng: random.Random, mistake: bool) -> str:
        target = problem.data["target"]
        solution: Chain = [tuple(s) for s in problem.data["chain"]]  # type: ignore[misc]
        lines = []
        for _ in range(rng.randint(0, self.max_misses)):
            miss = random_chain(rng, list(problem.data["numbers"]))
            if miss is not None and miss[-1][3] != target:
                lines.append(f"{chain_text(miss)}. no")
        final = chain_text(solution)
        if mistake:
            k = rng.randrange(len(solution))
            a, op, b, r = solution[k]
            slip = f"{a}{op}{b}={r + rng.choice((-1, 1)) if r > 1 else r + 1}"
            done = chain_text(solution[:k])
            final = f"{done + ', ' if done else ''}{slip}{MISTAKE_CHECK}{chain_text(solution[k:])}"
        lines.append(f"{final}. yes")
        return "\n".join(lines)
