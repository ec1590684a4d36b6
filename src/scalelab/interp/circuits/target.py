"""Which token of a labelled answer a circuit traces, and which answer tokens are forced onto the prompt first.

An answer's first token is often not where its fact lives: this tokenizer splits " 1251" into " ", "1", "2",
"5", "1", and the bare space is what every year (and most answers) begin with, so the model predicts it with
p ≈ 0.99 whatever it recalls about the subject; a graph of that logit traces formatting, not recall. The token
worth tracing is the first one at which the answer parts from its alternatives: the tokens it shares with some
other choice do not yet say which answer the model holds (" 12" is the start of " 1251" and of " 1279" alike),
the next one does. Those shared tokens are appended to the prompt in the answer's own tokenization, as if the
model had just produced them (teacher forcing), and the graph explains the logit of the deciding token.

Without alternatives (a prompt and answer given by hand) nothing says which tokens are shared, so only the
leading tokens that are pure whitespace are forced: they carry no content in any answer. When the answer's
tokens are all shared with a longer choice, no token tells them apart and the rule falls back to the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scalelab.errors import InputError
from scalelab.model.lm import LM


@dataclass(frozen=True)
class Target:
    """The token a graph traces: `forced` answer tokens go after the prompt, then `token` is the target."""

    forced: list[int]
    token: int


def _shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def answer_target(lm: LM, answer: str, choices: Sequence[str] = ()) -> Target:
    """The first token of `answer` that no other choice shares (past any whitespace-only tokens), with the
    answer tokens before it to force; see the module docstring for why."""
    ids = lm.encode(answer)
    if not ids:
        raise InputError(f"the answer {answer!r} has no tokens; give the text whose first informative token to trace")
    shared = max((_shared_prefix(ids, lm.encode(c)) for c in choices if c != answer), default=0)
    start = shared if shared < len(ids) else 0  # a prefix of a longer choice: nothing tells them apart
    while start < len(ids) - 1 and not lm.decode([ids[start]]).strip():
        start += 1
    return Target(ids[:start], ids[start])
