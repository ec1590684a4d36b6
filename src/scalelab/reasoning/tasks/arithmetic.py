"""Multi-digit addition and subtraction with a written scratchpad, held out exactly as the world holds it out.

Problems are drawn as the world's arithmetic genre draws them (`world.genres.arithmetic`: a first operand of
exactly `digits` digits, the second from `second_operand_range`), and a problem is held out exactly when the
world holds it out of pretraining (`is_heldout`), so a held-out problem was never in the corpus nor in any
training trace. The difficulty dial is the digit count; the harder difficulty has one more digit than
training shows (and, with the world's default `arithmetic_max_digits`, more than pretraining shows too).

The scratchpad works one column at a time from the right. Each line first restates what is left of the two
numbers (so the column's digits are the last digit of each, right there, and a small model never has to
count positions from the end of the question), then the column as a true equation, then the digits of the
result so far::

    What is 347+58?              What is 405-58?
    347+58: 7+8+0=15, 5          405-58: 15-8-0=7, 7
    34+5: 4+5+1=10, 05           40-5: 10-5-1=4, 47
    3+0: 3+0+1=4, 405            4-0: 4-0-1=3, 347
    Answer: 405                  Answer: 347

(a column's top digit is borrowed up by 10 when it must be; the carry or borrow goes into the next line; a
number that has run out is 0; a last carry gets a column of its own). A mistake trace writes one column's
result wrong, then `wait,` and the column again, right. Multiplication is not offered: its scratchpad (partial products,
then a sum) is a different skill from the column walk, and the targets ask for sums and differences.
"""

from __future__ import annotations

import random
import re
from typing import Any

from scalelab.errors import InputError
from scalelab.reasoning.tasks.base import MISTAKE_CHECK, Problem, Task
from scalelab.world.genres.arithmetic import apply, digit_range, is_heldout, second_operand_range

OPS = ("+", "-")
QUESTION = "What is {problem}?"  # how a sum is asked (the RSP's reasoning elicitation asks it the same way)
INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def columns(a: int, op: str, b: int) -> list[tuple[int, int, int, int]]:
    """(top, bottom, carry in, result) per column from the right, `top` already borrowed up when it must be;
    the result's last digit is the column's digit of the answer."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    out, carry = [], 0
    k = 0
    while k < max(len(xs), len(ys)) or carry:
        x = int(xs[k]) if k < len(xs) else 0
        y = int(ys[k]) if k < len(ys) else 0
        if op == "+":
            s = x + y + carry
            out.append((x, y, carry, s))
            carry = s // 10
        else:
            borrow = 1 if x < y + carry else 0
            top = x + 10 * borrow
            out.append((top, y, carry, top - y - carry))
            carry = borrow
        k += 1
    return out


def column_line(op: str, x: int, y: int, c: int, result: int) -> str:
    return f"{x}{op}{y}{op}{c}={result}"


class Arithmetic(Task):
    name = "arithmetic"
    unit = "digits"

    def __init__(self, train_difficulties: tuple[int, ...] = (1, 2, 3), harder: int = 4,
                 ops: tuple[str, ...] = OPS) -> None:
        super().__init__(train_difficulties, harder)
        bad = [o for o in ops if o not in OPS]
        if bad or not ops:
            raise InputError(f"arithmetic ops {list(ops)} must be a non-empty subset of {list(OPS)}")
        self.ops = tuple(ops)

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        a = rng.randint(*digit_range(difficulty))
        op = rng.choice(self.ops)
        b = rng.randint(*second_operand_range(op, a, difficulty))
        key = f"{a}{op}{b}"
        return Problem(self.name, key, difficulty, QUESTION.format(problem=key), str(apply(op, a, b)),
                       {"a": a, "op": op, "b": b})

    def is_heldout(self, problem: Problem) -> bool:
        d = problem.data
        return is_heldout(d["a"], d["op"], d["b"], problem.difficulty)

    def parse(self, problem: Problem, answer: str) -> Any:
        return int(answer) if INTEGER.fullmatch(answer) else None

    def is_right(self, problem: Problem, value: Any) -> bool:
        return value == int(problem.answer)

    def wrong_answer(self, problem: Problem, rng: random.Random) -> str:
        right = int(problem.answer)
        wrong = right + rng.choice((-1, 1)) * rng.choice((1, 1, 2, 10, 100))
        return str(wrong if wrong >= 0 and wrong != right else right + 1)

    def steps(self, problem: Problem, rng: random.Random, mistake: bool) -> str:
        op = problem.data["op"]
        cols = columns(problem.data["a"], op, problem.data["b"])
        wrong_at = rng.randrange(len(cols)) if mistake else -1
        lines, digits = [], ""
        a, b = str(problem.data["a"]), str(problem.data["b"])
        for k, (x, y, c, result) in enumerate(cols):
            digits = str(result % 10) + digits
            left = f"{a[:len(a) - k] or 0}{op}{b[:len(b) - k] or 0}: "
            line = f"{column_line(op, x, y, c, result)}, {digits}"
            if k == wrong_at:
                wrong = result + rng.choice((-1, 1)) if result > 0 else result + 1
                line = f"{column_line(op, x, y, c, wrong)}{MISTAKE_CHECK}{line}"
            lines.append(left + line)
        return "\n".join(lines)
