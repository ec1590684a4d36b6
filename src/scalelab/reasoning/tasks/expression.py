"""A small exact parser for the arithmetic expressions Countdown answers are written in.

Grammar: ``expr := term (("+" | "-") term)*``, ``term := factor (("*" | "/") factor)*``,
``factor := integer | "(" expr ")"``, integers without leading zeros, spaces anywhere between tokens. Values
are exact fractions, so `7/2*2` is 7 and no rounding ever turns a wrong answer right. Nothing here calls
`eval`: a reply is untrusted text.
"""

from __future__ import annotations

import re
from fractions import Fraction

TOKEN = re.compile(r"\s*(?:(0|[1-9][0-9]*)|([-+*/()]))")


class ParseError(ValueError):
    """The text is not an expression of the grammar (or divides by zero)."""


def tokenize(text: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ParseError(f"unexpected {text[pos:pos + 8]!r}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.pos = tokens, 0
        self.numbers: list[int] = []

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ParseError("the expression ends too soon")
        self.pos += 1
        return tok

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while self.peek() in ("*", "/"):
            op = self.take()
            rhs = self.factor()
            if op == "/" and rhs == 0:
                raise ParseError("division by zero")
            value = value * rhs if op == "*" else value / rhs
        return value

    def factor(self) -> Fraction:
        tok = self.take()
        if tok == "(":
            value = self.expr()
            if self.take() != ")":
                raise ParseError("unbalanced parenthesis")
            return value
        if tok.isdigit():
            self.numbers.append(int(tok))
            return Fraction(int(tok))
        raise ParseError(f"unexpected {tok!r}")


def evaluate(text: str) -> tuple[Fraction, list[int]]:
    """(exact value, the integers it uses in order), or ParseError."""
    parser = _Parser(tokenize(text))
    if not parser.tokens:
        raise ParseError("empty expression")
    value = parser.expr()
    if parser.peek() is not None:
        raise ParseError(f"unexpected {parser.peek()!r} after the expression")
    return value, parser.numbers
