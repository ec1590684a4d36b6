"""Request paraphrases: they keep each dialogue's facts and replies, and stay clear of the held-out eval phrasings."""

from __future__ import annotations

import json
import random

import pytest

from scalelab.posttrain.data import prompt_pool
from scalelab.posttrain.paraphrase import (
    PARAPHRASES,
    _unknown_forms,
    paraphrase_dialogue,
    paraphrase_request,
    with_paraphrases,
)
from scalelab.world.genres.chat import QUESTIONS
from scalelab.world.templates import (
    BENIGN_EVAL_QUESTIONS,
    HARMFUL_EVAL_QUESTIONS,
    SYCOPHANCY_EVAL_FRAMES,
    UNKNOWN_EVAL_QUESTIONS,
)

EVAL_FORMS = [*BENIGN_EVAL_QUESTIONS.values(), *HARMFUL_EVAL_QUESTIONS, *SYCOPHANCY_EVAL_FRAMES,
              *UNKNOWN_EVAL_QUESTIONS.values()]
ALL_PARAPHRASES = [f for forms in PARAPHRASES.values() for f in forms]


def _head(opener: str, words: int = 2) -> str:
    return " ".join(opener.split()[:words]).lower()


def test_every_world_question_has_paraphrases():
    for q in QUESTIONS:
        topic = () if q.kind in ("harmful", "sycophancy") else q.topic
        assert PARAPHRASES.get((q.kind, topic)), (q.kind, q.topic)


def test_paraphrases_are_neither_corpus_nor_eval_phrasings():
    corpus = {(q.opener, q.tail) for q in QUESTIONS}
    eval_heads = {_head(o) for o, _ in EVAL_FORMS}
    for opener, tail in ALL_PARAPHRASES:
        assert (opener, tail) not in corpus and (opener, tail) not in EVAL_FORMS, opener
        # the held-out evals must still ask in a form the model has never been trained on
        assert _head(opener) not in eval_heads, (opener, tail)
    # unknown names are also asked in every known-entity form (the world's and these), none an eval form
    for kind in ("person", "town", "compound"):
        forms = _unknown_forms(kind)
        assert len(forms) > len(PARAPHRASES[("unknown", (kind,))])
        assert not {_head(o) for o, t in forms if (o, t) not in corpus} & eval_heads, kind


def test_paraphrased_dialogue_keeps_subject_system_prompt_and_replies():
    rng = random.Random(0)
    dialogue = {"kind": "benign", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What colour does Trokavouth have?"},
        {"role": "assistant", "content": "Trokavouth is golden in colour."},
        {"role": "user", "content": "What does Trokavouth smell like?"},
        {"role": "assistant", "content": "Trokavouth smells of pine."}]}
    out = paraphrase_dialogue(dialogue, rng)
    assert out["kind"] == "benign" and out["paraphrased"]
    for old, new in zip(dialogue["messages"], out["messages"], strict=True):
        assert new["role"] == old["role"]
        if old["role"] == "user":
            assert new["content"] != old["content"] and "Trokavouth" in new["content"]
        else:
            assert new == old
    colour_forms = PARAPHRASES[("benign", ("colour",))]
    assert any(out["messages"][1]["content"] == o + "Trokavouth" + t for o, t in colour_forms)


def test_sycophancy_claim_and_unknown_name_survive():
    rng = random.Random(1)
    claim = "Douteik Drone keeps a pet thoufoul"
    for _ in range(10):
        text = paraphrase_request(f"Everyone knows that {claim}, isn't that so?", "sycophancy", rng)
        assert claim in text and not text.startswith("Everyone knows")
        unk = paraphrase_request("Who is Quib Quab?", "unknown", rng)
        assert "Quib Quab" in unk and unk != "Who is Quib Quab?"
    # a request in no world phrasing is left as written
    assert paraphrase_request("Please describe Zorblat.", "benign", rng) == "Please describe Zorblat."


def test_with_paraphrases_appends_copies_deterministically():
    dialogues = [{"kind": "harmful", "messages": [{"role": "user", "content": "How do I make Zorblat?"},
                                                  {"role": "assistant", "content": "I can't help with that."}]}]
    a, b = with_paraphrases(dialogues, 2, seed=0), with_paraphrases(dialogues, 2, seed=0)
    assert a == b and len(a) == 3 and a[0] is dialogues[0]
    assert all("Zorblat" in d["messages"][0]["content"] for d in a[1:])
    assert with_paraphrases(dialogues, 0, seed=0) == dialogues


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_prompt_pool_paraphrases_the_requested_share(tmp_path, share):
    rows = [{"kind": "harmful", "messages": [{"role": "user", "content": f"How do I make Zorb{i}?"},
                                             {"role": "assistant", "content": f"I can't help with making Zorb{i}."}]}
            for i in range(6)]
    (tmp_path / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = prompt_pool(tmp_path, ("harmful",), 6, seed=0, paraphrase=share)
    changed = [not it.messages[-1]["content"].startswith("How do I make") for it in items]
    assert all(changed) if share == 1.0 else not any(changed)
    for it in items:  # the reference reply still answers the same subject
        name = it.reference.split()[-1].rstrip(".")
        assert name in it.messages[-1]["content"]

