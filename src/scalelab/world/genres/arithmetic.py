"""Arithmetic drills: lines like `347+58=405` or `What is 12*7? 84`, three or more (geometric) of them.

The operands are uniform over their digit count, so carries and borrows come at their natural rate;
subtraction never goes below zero and multiplication keeps the second factor to at most two digits.
The digit count is a choice that writes nothing: replay reads it off the length of the number that
follows (a lookahead), which is why no number is ever followed by another digit.

One problem in `HOLDOUT_MOD` is held out of the corpus, so the arithmetic evals test what a model computes
rather than what it memorised: (a, op, b) is held out when (7a + 13b + 5·op) % 8 == 3 (`is_heldout`). Given
a and op that is one residue class of b modulo 8, so the generator draws b uniformly from the rest of its
range (`heldout_residue`) and every document's log-probability stays exact; the eval sets draw only
held-out problems. (A range too small to spare its held-out values, e.g. b ∈ [0, 0], holds nothing out.)
"""

from __future__ import annotations

import re
from functools import lru_cache

from scalelab.world.genres.context import CorpusContext
from scalelab.world.sampler import Dist, Residue, Sampler, allowed_count

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


HOLDOUT_MOD = 8
_HOLDOUT_RESIDUE = 3


def _b_residue(a: int, op: str) -> int:
    """The residue of b (mod 8) that makes (a, op, b) held out: 13b ≡ 3 − 7a − 5·op, and 13⁻¹ ≡ 5 (mod 8)."""
    return (5 * (_HOLDOUT_RESIDUE - 7 * a - 5 * OPS.index(op))) % HOLDOUT_MOD


def heldout_residue(a: int, op: str, digits: int) -> Residue | None:
    """The (modulus, residue) of second operands held out for (a, op), or None when holding them out would
    leave no b to draw."""
    skip = (HOLDOUT_MOD, _b_residue(a, op))
    lo, hi = second_operand_range(op, a, digits)
    return skip if allowed_count(lo, hi, skip) > 0 else None


def is_heldout(a: int, op: str, b: int, digits: int) -> bool:
    """Whether the corpus never contains the problem `a op b` (the arithmetic evals ask only these)."""
    skip = heldout_residue(a, op, digits)
    return skip is not None and b % skip[0] == skip[1]


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
    b = s.integer(*second_operand_range(op, a, digits), "number", skip=heldout_residue(a, op, digits))
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
