"""Arithmetic drills: lines like `347+58=405` or `What is 12*7? 84`, three or more (geometric) of them.

The operands are uniform over their digit count, so carries and borrows come at their natural rate;
subtraction never goes below zero and multiplication keeps the second factor to at most two digits.
The digit count is a choice that writes nothing: replay reads it off the length of the number that
follows (a lookahead), which is why no number is ever followed by another digit.
"""

from __future__ import annotations

import re
from functools import lru_cache

from scalelab.world.genres.context import CorpusContext
from scalelab.world.sampler import Dist, Sampler

LOOKAHEAD = re.compile(r"[0-9]|What is ")
OPS = ("+", "-", "*")
OP_DIST = Dist.uniform(len(OPS))
FORMATS = ("", "What is ")  # `a+b=c` or `What is a+b? c`
FORMAT_LOOKAHEAD = (re.compile(r"[0-9]"), None)
FORMAT_DIST = Dist([0.75, 0.25])
P_CONTINUE = 0.85
MIN_LINES, MAX_LINES = 3, 14  # a drill is a few dozen characters at least


def digit_range(digits: int) -> tuple[int, int]:
    """The operands with exactly `digits` digits (0 counts as a one-digit number)."""
    return (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1


def second_operand_range(op: str, a: int, digits: int) -> tuple[int, int]:
    if op == "-":
        return 0, a
    if op == "*":
        return 0, 10 ** min(digits, 2) - 1
    return 0, 10**digits - 1


def apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


@lru_cache(maxsize=16)
def _digit_lookaheads(max_digits: int) -> tuple[re.Pattern[str], ...]:
    """Option d of the digit-count choice matches a number of exactly d digits."""
    return tuple(re.compile(rf"[0-9]{{{d}}}(?![0-9])") for d in range(1, max_digits + 1))


def problem(s: Sampler, max_digits: int) -> None:
    """One drill line: choose the digit count, operands and operator, write the exact result."""
    digits_dist = Dist.uniform(max_digits)
    looks = _digit_lookaheads(max_digits)
    fmt = s.pick(FORMAT_DIST, lambda i: ((FORMATS[i], "template"),), FORMAT_LOOKAHEAD)
    digits = 1 + s.pick(digits_dist, lambda i: (), looks)
    a = s.integer(*digit_range(digits), "number")
    op = OPS[s.pick_literal(OP_DIST, OPS, "operator")]
    b = s.integer(*second_operand_range(op, a, digits), "number")
    if fmt == 0:
        s.emit("=", "operator")
    else:
        s.emit("? ", "template")
    s.emit(str(apply(op, a, b)), "number")


def generate(s: Sampler, ctx: CorpusContext) -> dict:
    max_digits = ctx.world.config.arithmetic_max_digits
    for k in range(MIN_LINES):
        if k:
            s.emit("\n", "template")
        problem(s, max_digits)
    n = MIN_LINES
    while n < MAX_LINES and ctx.keep_going(s, P_CONTINUE, "\n"):
        n += 1
        problem(s, max_digits)
    return {}
