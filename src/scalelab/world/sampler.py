"""The choice recorder behind every world document: one program, two modes, an exact log-probability.

A document is produced by a small probabilistic program (see `scalelab.world.corpus`). Every random
decision it makes goes through a `Sampler`, which records the decision and its log-probability, and
every character it writes goes through the same object together with the concept that character
expresses. Two samplers run the same program:

- `Recorder` draws each choice from a seeded `random.Random` and writes text;
- `Replayer` is handed a finished text and resolves each choice by matching the options' literals
  (and optional lookahead patterns) against the text at its cursor. Exactly one option must match,
  otherwise the text was not produced by the program (or the program is ambiguous) and it raises.

Because replay recovers every choice from the text alone, the map choices → text is injective on
everything replay accepts, and the summed log-probability is the exact generation log-probability of
the text: the Bayes-optimal loss a language model could reach on it.
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import accumulate

Piece = tuple[str, str]  # (text, concept)
Residue = tuple[int, int]  # (modulus m, residue r): the integers v with v % m == r
Render = Callable[[int], Sequence[Piece]]

# Lookahead that only matches at the end of the text: the "stop" option of a document's last choice.
END_OF_TEXT = re.compile(r"\Z")
_DIGITS = re.compile(r"[0-9]+")


class ReplayError(ValueError):
    """A text could not have been produced by the world's generator (or matched it ambiguously)."""


def residue_count(lo: int, hi: int, skip: Residue | None) -> int:
    """How many integers in [lo, hi] have v % m == r (0 without a `skip`)."""
    if skip is None or hi < lo:
        return 0
    m, r = skip
    return (hi - r) // m - (lo - 1 - r) // m


def allowed_count(lo: int, hi: int, skip: Residue | None) -> int:
    """How many integers in [lo, hi] an `integer(lo, hi, skip=...)` choice can produce."""
    return hi - lo + 1 - residue_count(lo, hi, skip)


def nth_allowed(lo: int, k: int, skip: Residue | None) -> int:
    """The k-th (0-based) integer ≥ lo that `skip` does not exclude."""
    v = lo + k
    while allowed_count(lo, v, skip) < k + 1:  # each excluded value before v pushes it one further
        v += 1
    return v


class Dist:
    """A categorical distribution over option indices, with cumulative weights and log-probabilities."""

    __slots__ = ("cum", "last", "logp", "n", "total")

    def __init__(self, weights: Sequence[float]) -> None:
        if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"a distribution needs non-negative weights with a positive sum, got {weights!r}")
        self.n = len(weights)
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1]
        self.logp = [math.log(w / self.total) if w > 0 else -math.inf for w in weights]
        self.last = max(i for i, w in enumerate(weights) if w > 0)

    @staticmethod
    @lru_cache(maxsize=4096)
    def uniform(n: int) -> Dist:
        return Dist([1.0] * n)

    @staticmethod
    def zipf(n: int, exponent: float) -> Dist:
        """Rank r (0-based) gets weight 1/(r+1)^exponent: a few popular options, a long tail."""
        return Dist([(r + 1) ** -exponent for r in range(n)])


class Sampler:
    """What the document programs call; `Recorder` and `Replayer` implement it."""

    def __init__(self) -> None:
        self.logprob = 0.0
        self.choices: list[int] = []
        self.spans: list[list] = []  # [start, end, concept], adjacent equal concepts merged
        self.facts: list[str] = []  # world facts the text states (keys like "person:3:home_town")
        self.pos = 0

    # -- the program's vocabulary -----------------------------------------------------------------
    def pick(self, dist: Dist, render: Render, lookahead: Sequence[re.Pattern[str] | None] | None = None) -> int:
        """Choose option i ~ dist and write render(i); lookahead[i] must match right after it."""
        raise NotImplementedError

    def pick_literal(self, dist: Dist, options: Sequence[str], concept: str) -> int:
        return self.pick(dist, lambda i: ((options[i], concept),))

    def emit(self, text: str, concept: str) -> None:
        """Write text that the choices so far fully determine (no entropy)."""
        raise NotImplementedError

    def emit_pieces(self, pieces: Sequence[Piece]) -> None:
        for text, concept in pieces:
            self.emit(text, concept)

    def integer(self, lo: int, hi: int, concept: str, skip: Residue | None = None) -> int:
        """A uniform integer in [lo, hi], written in decimal (the program must not follow it with a digit);
        with `skip = (m, r)`, uniform over the values v with v % m != r (the held-out ones never occur)."""
        raise NotImplementedError

    def note_fact(self, key: str) -> None:
        self.facts.append(key)

    # -- shared bookkeeping ------------------------------------------------------------------------
    def _span(self, n: int, concept: str) -> None:
        if n == 0:
            return
        end = self.pos + n
        spans = self.spans
        if spans and spans[-1][2] == concept:
            spans[-1][1] = end
        else:
            spans.append([self.pos, end, concept])
        self.pos = end


class Recorder(Sampler):
    """Sample mode: draw choices from a seeded RNG and collect the text in pieces."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.parts: list[str] = []

    def pick(self, dist: Dist, render: Render, lookahead: Sequence[re.Pattern[str] | None] | None = None) -> int:
        i = bisect_right(dist.cum, self.rng.random() * dist.total)
        if i >= dist.n:  # random() * total can round up to total; never land on a zero-weight option
            i = dist.last
        self.logprob += dist.logp[i]
        self.choices.append(i)
        for text, concept in render(i):
            if text:
                self.parts.append(text)
                self._span(len(text), concept)
        return i

    def emit(self, text: str, concept: str) -> None:
        if text:
            self.parts.append(text)
            self._span(len(text), concept)

    def integer(self, lo: int, hi: int, concept: str, skip: Residue | None = None) -> int:
        n = allowed_count(lo, hi, skip)
        if n <= 0:
            raise ValueError(f"no integer in [{lo}, {hi}] is allowed by skip={skip}; the program must not ask")
        value = lo + self.rng.randrange(hi - lo + 1) if skip is None else nth_allowed(lo, self.rng.randrange(n), skip)
        self.logprob -= math.log(n)
        self.choices.append(value)
        self.emit(str(value), concept)
        return value

    def text(self) -> str:
        return "".join(self.parts)


class Replayer(Sampler):
    """Replay mode: walk the program over a given text, resolving every choice from the text itself."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def _fail(self, what: str) -> ReplayError:
        snippet = self.text[self.pos:self.pos + 40]
        return ReplayError(f"{what} at character {self.pos} (text there: {snippet!r})")

    def pick(self, dist: Dist, render: Render, lookahead: Sequence[re.Pattern[str] | None] | None = None) -> int:
        text, pos = self.text, self.pos
        matches: list[tuple[int, Sequence[Piece]]] = []
        for i in range(dist.n):
            if dist.logp[i] == -math.inf:
                continue
            pieces = render(i)
            end = pos
            for piece, _ in pieces:
                if not text.startswith(piece, end):
                    break
                end += len(piece)
            else:
                look = lookahead[i] if lookahead is not None else None
                if look is None or look.match(text, end):
                    matches.append((i, pieces))
        if len(matches) != 1:
            what = "no option" if not matches else f"{len(matches)} options ({[m[0] for m in matches]})"
            raise self._fail(f"{what} of a {dist.n}-way choice matched")
        i, pieces = matches[0]
        self.logprob += dist.logp[i]
        self.choices.append(i)
        for piece, concept in pieces:
            self._span(len(piece), concept)
        return i

    def emit(self, text: str, concept: str) -> None:
        if not self.text.startswith(text, self.pos):
            raise self._fail(f"expected {text!r}")
        self._span(len(text), concept)

    def integer(self, lo: int, hi: int, concept: str, skip: Residue | None = None) -> int:
        m = _DIGITS.match(self.text, self.pos)
        if m is None:
            raise self._fail("expected a number")
        digits = m.group()
        value = int(digits)
        if str(value) != digits or not lo <= value <= hi:
            raise self._fail(f"number {digits} is not a canonical integer in [{lo}, {hi}]")
        if skip is not None and value % skip[0] == skip[1]:
            raise self._fail(f"number {digits} is held out (≡ {skip[1]} mod {skip[0]}); the generator never writes it")
        self.logprob -= math.log(allowed_count(lo, hi, skip))
        self.choices.append(value)
        self._span(len(digits), concept)
        return value

    def finish(self) -> None:
        if self.pos != len(self.text):
            raise self._fail("the program ended before the text did")
