"""The entropy floor: the Bayes-optimal loss per token of a generated corpus under a tokenizer.

The world generator records each document's exact log-probability, so the cross-entropy of the best
possible model of the packed stream is known. In the stream every document is followed by the next
document's BOS, and predicting that BOS is predicting that the document ended, a choice whose
probability the generator's logprob already includes. So the floor, in nats per token, is

    Σ_docs −logprob(doc) / Σ_docs (n_tokens(doc) + 1).

It is exact only when the text determines every choice the generator made (no two choice sequences
print the same text); the world generator is built so. A scaling-law fit's irreducible term E should
land near it.

It is a bound a model can reach only when it reads each document whole: validation scores whole documents
in BOS-first windows (`data.loader.eval_windows`), and `validation_floor` computes the floor over exactly
those documents, so the val loss and the floor divide the same nats by the same tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from transformers import PreTrainedTokenizerBase

from scalelab.data.loader import eval_windows
from scalelab.data.shards import encode_documents
from scalelab.errors import InputError


class FloorError(InputError):
    """A document record cannot enter the floor; the message names the record."""


def _checked(docs: Iterable[dict[str, Any]], nats: list[float]) -> Iterator[str]:
    """Texts of `docs`, appending each −logprob to `nats` as a side channel so the docs stream once."""
    for i, doc in enumerate(docs):
        name = f"document {doc.get('id', i)!r}" if isinstance(doc, dict) else f"document {i}"
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise FloorError(f"{name} has no string \"text\"; pass the world generator's records")
        lp = doc.get("logprob")
        if isinstance(lp, bool) or not isinstance(lp, int | float) or not math.isfinite(lp) or lp > 0:
            raise FloorError(f"{name} has logprob={lp!r}; it must be a finite natural log-probability ≤ 0")
        nats.append(-float(lp))
        yield doc["text"]


def entropy_floor(docs: Iterable[dict[str, Any]], tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The floor of `docs` (records with `text` and `logprob`) in nats per token of `tokenizer`."""
    nats: list[float] = []
    tokens = 0
    n_docs = 0
    for batch in encode_documents(tokenizer, _checked(docs, nats)):
        tokens += sum(len(ids) + 1 for ids in batch)  # +1: the BOS that follows each document
        n_docs += len(batch)
    if n_docs == 0:
        raise FloorError("entropy_floor got no documents; pass the world's records (read_world_records)")
    total = math.fsum(nats)
    return {"entropy_floor_nats_per_token": total / tokens, "nats": total, "tokens": tokens, "docs": n_docs}


def validation_floor(records: Iterable[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, shards_dir: Any,
                     seq_len: int, eval_tokens: int) -> dict[str, Any]:
    """The floor over exactly the documents validation scores (`eval_windows` of the val split), with the
    document count; `records` are the val split's records in stream order."""
    _, docs = eval_windows(shards_dir, "val", seq_len, eval_tokens)
    wanted = set(docs)
    chosen = [r for i, r in enumerate(records) if i in wanted]
    out = entropy_floor(chosen, tokenizer)
    return {**out, "scored_by": "val loss: whole documents of the val split in BOS-first windows",
            "seq_len": seq_len, "eval_tokens": eval_tokens}
