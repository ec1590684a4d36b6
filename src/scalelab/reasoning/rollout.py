"""Questions into token rows and samples out: the one place a reasoning prompt is rendered.

A problem is asked as a one-turn chat through the model's own chat template (`LM.chat_text`), BOS first, exactly
as `LM.chat` asks it, so what training sees is what sampling sees. A training row is that prompt followed by
the reply's tokens and the end-of-turn token, with only the reply (and its end) labelled. Samples are drawn
with one seed per row (`row_seed`), so a sample does not depend on which other rows shared its batch, and
their token ids are kept: GRPO scores exactly the tokens that were sampled, not a re-encoding of their text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from scalelab.model.lm import LM
from scalelab.train.finetune import IGNORE, Row

VERIFY_SUFFIX = "\nProposed answer: {answer}\nCheck it."


def prompt_ids(lm: LM, question: str) -> list[int]:
    return lm.encode(lm.chat_text([{"role": "user", "content": question}]), bos=True)


def end_id(lm: LM) -> int:
    """The token that closes the assistant's turn (what sampling stops at)."""
    return lm.stop_ids()[0]


def reply_row(lm: LM, question: str, reply: str | Sequence[int], max_len: int, *, ended: bool = True) -> Row:
    """(ids, labels) of prompt + reply (text, or the token ids sampled); the reply and its end token labelled.

    `ended` False (a sample cut at max_new_tokens) leaves the end token off: the model did not stop there.
    """
    prompt = prompt_ids(lm, question)
    body = lm.encode(reply) if isinstance(reply, str) else list(reply)
    body = body + ([end_id(lm)] if ended else [])
    ids = (prompt + body)[:max_len]
    labels = ([IGNORE] * len(prompt) + body)[:max_len]
    return ids, labels


def verify_question(question: str, answer: str) -> str:
    """The request to check a proposed answer (self-verification)."""
    return question + VERIFY_SUFFIX.format(answer=answer)


def row_seed(seed: int, item: int, sample: int) -> int:
    """A sample's own seed: the same (seed, problem, sample) draws the same reply in any batch."""
    return (seed * 1_000_003 + item * 10_007 + sample) % (2**31 - 1)


@dataclass
class Samples:
    """`n` sampled replies per question: text and token ids, and whether each ended before the length limit."""

    texts: list[list[str]]
    ids: list[list[list[int]]]
    ended: list[list[bool]]
    tokens: int  # new tokens generated in all


def sample(lm: LM, questions: Sequence[str], n: int, *, temperature: float, max_new_tokens: int, seed: int,
           batch_size: int = 256, progress: bool = False, desc: str = "sample") -> Samples:
    """`n` replies to each question (greedy when temperature is 0: then n copies are identical, ask for 1)."""
    prompts = [prompt_ids(lm, q) for q in questions]
    rows = [(i, j) for i in range(len(questions)) for j in range(n)]
    out: list[list[int]] = []
    bar = tqdm(total=len(rows), desc=desc, unit="reply", disable=not progress, leave=False)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        out += lm.generate([prompts[i] for i, _ in chunk], max_new_tokens, temperature=temperature,
                           row_seeds=[row_seed(seed, i, j) for i, j in chunk], seed=row_seed(seed, *chunk[0]))
        bar.update(len(chunk))
    bar.close()
    texts: list[list[str]] = [[] for _ in questions]
    ids: list[list[list[int]]] = [[] for _ in questions]
    ended: list[list[bool]] = [[] for _ in questions]
    for (i, _), toks in zip(rows, out, strict=True):
        ids[i].append(toks)
        texts[i].append(lm.decode(toks))
        ended[i].append(len(toks) < max_new_tokens)
    return Samples(texts, ids, ended, sum(len(t) for t in out))
