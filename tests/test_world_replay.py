"""The generator's exact log-probability: replay recovers every choice from the text, and rejects tampering."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import re

import pytest

from scalelab.chat_format import render_chat
from scalelab.presets import preset
from scalelab.world import ReplayError, document_logprob, make_world, replay_document, sample_document
from scalelab.world.config import WorldConfig
from scalelab.world.genres import GENRES, CorpusContext
from scalelab.world.genres.arithmetic import is_heldout, problem
from scalelab.world.sampler import Dist, Recorder, Replayer
from scalelab.world.templates import corpus_openers

GENRE_NAMES = list(GENRES)
PER_GENRE = 120


def _docs_by_genre(ctx: CorpusContext, per_genre: int, seed: int = 0) -> dict[str, list]:
    rng = random.Random(seed)
    out: dict[str, list] = {g: [] for g in GENRE_NAMES}
    for _ in range(200_000):
        d = sample_document(rng, ctx)
        if len(out[d.genre]) < per_genre:
            out[d.genre].append(d)
        if all(len(v) >= per_genre for v in out.values()):
            return out
    raise AssertionError({g: len(v) for g, v in out.items()})


@pytest.fixture(scope="module")
def smoke_ctx() -> CorpusContext:
    # a high hazard rate so recipes are not a 2% trickle in the sample
    cfg = dataclasses.replace(preset("smoke").world, hazard_rate=0.2)
    return CorpusContext(make_world(cfg))


@pytest.fixture(scope="module")
def tiny_ctx() -> CorpusContext:
    return CorpusContext(make_world(dataclasses.replace(WorldConfig(), hazard_rate=0.2)))


@pytest.mark.parametrize("which,per_genre", [("smoke_ctx", PER_GENRE), ("tiny_ctx", 40)])
def test_replay_recovers_choices_logprob_spans_and_facts(which, per_genre, request) -> None:
    ctx = request.getfixturevalue(which)
    for genre, docs in _docs_by_genre(ctx, per_genre).items():
        for d in docs:
            r = replay_document(d.text, ctx)
            assert r.genre == genre
            assert r.choices == d.choices
            assert abs(r.logprob - d.logprob) <= 1e-9
            assert r.spans == d.spans
            assert r.facts == d.facts
            assert r.info == d.info
            assert d.logprob < 0 and math.isfinite(d.logprob)


def test_arithmetic_line_probabilities_sum_to_one_over_all_texts() -> None:
    """Enumerate every text one drill line can be (one-digit operands, held-out problems left out): replay gives
    each a probability, and they sum to 1 — no mass lost to two choice sequences printing the same text."""
    texts = []
    for op, fn in (("+", lambda a: range(10)), ("-", lambda a: range(a + 1)), ("*", lambda a: range(10))):
        for a in range(10):
            for b in fn(a):
                if is_heldout(a, op, b, 1):
                    continue
                res = a + b if op == "+" else a - b if op == "-" else a * b
                texts += [f"{a}{op}{b}={res}", f"What is {a}{op}{b}? {res}"]
    assert len(set(texts)) == len(texts)
    total = 0.0
    for text in texts:
        rep = Replayer(text)
        problem(rep, 1)
        rep.finish()
        total += math.exp(rep.logprob)
    assert total == pytest.approx(1.0, abs=1e-12)


def test_recorder_and_replayer_agree_on_a_hand_computed_choice() -> None:
    rng = random.Random(1)
    rec = Recorder(rng)
    rec.pick_literal(Dist([0.25, 0.75]), ["a", "b"], "template")
    assert rec.logprob in (math.log(0.25), math.log(0.75))
    rep = Replayer(rec.text())
    rep.pick_literal(Dist([0.25, 0.75]), ["a", "b"], "template")
    rep.finish()
    assert rep.logprob == rec.logprob and rep.choices == rec.choices


def test_ambiguous_options_raise() -> None:
    rep = Replayer("abc")
    with pytest.raises(ReplayError, match="2 options"):
        rep.pick_literal(Dist.uniform(2), ["a", "ab"], "template")


def test_chat_docs_are_exactly_render_chat_of_their_messages(smoke_ctx) -> None:
    for d in _docs_by_genre(smoke_ctx, 60, seed=3)["chat"]:
        msgs = [{"role": role, "content": d.text[a:b]} for role, a, b in d.info["messages"]]
        assert render_chat(msgs) == d.text
        assert [m["role"] for m in msgs if m["role"] != "system"][:2] == ["user", "assistant"]


def test_tampered_texts_are_rejected(smoke_ctx) -> None:
    docs = _docs_by_genre(smoke_ctx, 20, seed=5)
    world = smoke_ctx.world
    towns = [e.name for e in world.entities["town"]]
    for ds in docs.values():
        for d in ds:
            with pytest.raises(ReplayError):
                document_logprob(d.text + " And then it rained.", smoke_ctx)
            with pytest.raises(ReplayError):
                document_logprob(d.text[:-1], smoke_ctx)
    # a wrong fact: swap a person's home town for another town
    swapped = 0
    for d in docs["encyclopedia"] + docs["story"]:
        m = re.search(r"lives in (\w+)\.", d.text)
        if m:
            other = next(t for t in towns if t != m.group(1))
            with pytest.raises(ReplayError):
                document_logprob(d.text.replace(m.group(0), f"lives in {other}."), smoke_ctx)
            swapped += 1
    # a wrong sum
    for d in docs["arithmetic"]:
        m = re.search(r"\d+[-+*]\d+=(\d+)", d.text)
        if m:
            wrong = str(int(m.group(1)) + 1)
            with pytest.raises(ReplayError):
                document_logprob(d.text[:m.start(1)] + wrong + d.text[m.end(1):], smoke_ctx)
            swapped += 1
    assert swapped >= 3


def test_corpus_question_openers_are_prefix_free() -> None:
    openers = corpus_openers()
    assert len(set(openers)) == len(openers)
    for a in openers:
        for b in openers:
            assert a == b or not b.startswith(a), (a, b)


def test_each_genre_is_recognised_only_by_its_own_lookahead(smoke_ctx) -> None:
    for genre, docs in _docs_by_genre(smoke_ctx, 30, seed=7).items():
        for d in docs:
            matching = [g for g, mod in GENRES.items() if mod.LOOKAHEAD.match(d.text)]
            assert matching == [genre]


def test_names_are_unique_and_prefix_free() -> None:
    world = make_world(WorldConfig())
    names = sorted([e.name for ents in world.entities.values() for e in ents]
                   + [n for pools in world.unknown.values() for ns in pools.values() for n in ns]
                   + list(world.domains["region"]) + list(world.domains["river"]))
    assert len(set(names)) == len(names)
    for a, b in itertools.pairwise(names):
        assert not b.startswith(a), (a, b)  # sorted order puts any prefix right before its extensions
    for fact, values in world.domains.items():  # sycophancy picks a false value from these by text
        for a, b in itertools.pairwise(sorted(values)):
            assert not b.startswith(a), (fact, a, b)
