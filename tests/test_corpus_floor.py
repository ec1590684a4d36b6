"""The entropy floor on toy corpora whose answer is worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from scalelab.data.floor import FloorError, entropy_floor
from scalelab.data.shards import pack_shards
from scalelab.data.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerFast:
    texts = ["Ælfric counts 12 and 7, then 405.", "a b c d", "The sum of 347 and 58 is 405."] * 30
    return train_tokenizer(texts, vocab_size=300, out_dir=tmp_path_factory.mktemp("tok"))


def test_uniform_single_letters(tok: PreTrainedTokenizerFast) -> None:
    # Four equiprobable one-letter documents: ln 4 nats spread over the letter and the BOS after it
    # (which costs nothing: the document always ends after one letter) -> ln 2 per token.
    docs = [{"text": c, "logprob": math.log(1 / 4)} for c in "abcd"]
    floor = entropy_floor(docs, tok)
    assert floor["tokens"] == 8 and floor["docs"] == 4
    assert floor["nats"] == pytest.approx(4 * math.log(4))
    assert floor["entropy_floor_nats_per_token"] == pytest.approx(math.log(2))


def test_numbers_of_random_length(tok: PreTrainedTokenizerFast) -> None:
    # Generator: a coin picks 1 or 2 digits, then uniform digits. Digits are one token each, so
    # "7" is 1+1 tokens with logprob ln(1/2 · 1/10) and "42" is 2+1 tokens with ln(1/2 · 1/100).
    docs = [{"id": 1, "text": "7", "logprob": math.log(0.05)}, {"id": 2, "text": "42", "logprob": math.log(0.005)}]
    floor = entropy_floor(iter(docs), tok)
    expected = (2 * math.log(2) + 3 * math.log(10)) / 5
    assert floor["tokens"] == 5
    assert floor["entropy_floor_nats_per_token"] == pytest.approx(expected)


def test_floor_counts_the_tokens_the_packer_writes(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    texts = ["Ælfric counts 12 and 7, then 405.", "The sum of 347 and 58 is 405. 🐉", "a b"]
    docs = [{"text": t, "logprob": -3.0} for t in texts]
    packed = pack_shards(tok, texts, texts[:1], tmp_path)
    floor = entropy_floor(docs, tok)
    assert floor["tokens"] == sum(packed["splits"]["train"]["tokens"])
    assert floor["entropy_floor_nats_per_token"] == pytest.approx(9.0 / floor["tokens"])


@pytest.mark.parametrize("doc,msg", [
    ({"id": 3, "text": "x"}, "document 3 has logprob=None"),
    ({"text": "x", "logprob": 0.5}, "document 0 has logprob=0.5"),
    ({"text": "x", "logprob": float("-inf")}, "logprob=-inf"),
    ({"logprob": -1.0}, "document 0 has no string \"text\""),
])
def test_bad_records(tok: PreTrainedTokenizerFast, doc: dict, msg: str) -> None:
    with pytest.raises(FloorError, match=msg):
        entropy_floor([doc], tok)


def test_no_documents(tok: PreTrainedTokenizerFast) -> None:
    with pytest.raises(FloorError, match="no documents"):
        entropy_floor([], tok)
