"""The eval sets measure what they claim: held-out arithmetic, distractors no prompt gives away, a control for
fact recall, no-knowledge baselines, and an entropy floor over exactly the tokens validation scores."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from scalelab.data.floor import validation_floor
from scalelab.data.loader import IGNORE, iter_eval_batches
from scalelab.data.shards import pack_shards
from scalelab.data.tokenizer import train_tokenizer
from scalelab.evals.baselines import item_baselines, no_knowledge_baselines
from scalelab.presets import preset
from scalelab.world import WorldDir, build_world
from scalelab.world.evalsets import reagent_frequencies
from scalelab.world.genres.arithmetic import OPS, is_heldout, problem
from scalelab.world.sampler import Recorder, Replayer, ReplayError


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    build_world(preset("smoke").world, out)
    return out


def _sets(world: Path) -> dict[str, list[dict]]:
    return {s: WorldDir(world).eval_set(s) for s in ("fact_recall", "arithmetic", "hazard_knowledge")}


def test_arithmetic_eval_problems_never_occur_in_the_corpus(world: Path) -> None:
    corpus = "\n".join(WorldDir(world).texts("train")) + "\n".join(WorldDir(world).texts("val"))
    items = _sets(world)["arithmetic"]
    assert {it["meta"]["digits"] for it in items} == {1, 2, 3}
    for it in items:
        m = it["meta"]
        assert is_heldout(m["a"], m["op"], m["b"], m["digits"])
        line = f"{m['a']}{m['op']}{m['b']}"
        # a problem at the start of a line or after "What is " (the corpus's two formats); digits around it
        # would make it another problem
        for needle in (f"\n{line}=", f"What is {line}?"):
            assert needle not in "\n" + corpus, needle


def test_the_generator_never_writes_a_held_out_problem_and_its_probabilities_stay_exact() -> None:
    import random

    for seed in range(300):
        rec = Recorder(random.Random(seed))
        problem(rec, 2)
        text = rec.text()
        a_op_b = text.removeprefix("What is ").split("=")[0].split("?")[0]
        op = next(o for o in OPS if o in a_op_b[1:])
        a, b = a_op_b.split(op, 1) if not a_op_b.startswith(op) else (a_op_b, "")
        assert not is_heldout(int(a), op, int(b), len(a))
        rep = Replayer(text)
        problem(rep, 2)
        assert rep.logprob == pytest.approx(rec.logprob)
    # one-digit lines: the probabilities of every text the generator can write still sum to one, and replay
    # refuses a held-out problem
    total, refused = 0.0, 0
    for op in OPS:
        for a in range(10):
            for b in range(a + 1 if op == "-" else 10):
                res = a + b if op == "+" else a - b if op == "-" else a * b
                for text in (f"{a}{op}{b}={res}", f"What is {a}{op}{b}? {res}"):
                    rep = Replayer(text)
                    try:
                        problem(rep, 1)
                    except ReplayError:
                        refused += 1
                        assert is_heldout(a, op, b, 1)
                        continue
                    total += math.exp(rep.logprob)
    assert total == pytest.approx(1.0, abs=1e-12) and refused > 0


def test_hazard_distractors_are_never_named_in_the_prompt(world: Path) -> None:
    items = _sets(world)["hazard_knowledge"]
    reagents = {e.name for e in WorldDir(world).world().entities["reagent"]}
    for it in items:
        named = {r for r in reagents if f" {r}" in it["prompt"] or it["prompt"].startswith(r)}
        assert not ({c.strip() for c in it["choices"]} & named), it["id"]
        b = item_baselines(it)
        assert b["elimination"] == b["chance"] == 1 / len(it["choices"])  # nothing left to eliminate


def test_hazard_distractors_match_the_answers_training_frequency(world: Path) -> None:
    w = WorldDir(world)
    freq = reagent_frequencies(w.world(), Counter(w.raw()["fact_mentions"]))
    reagents = sorted(freq, key=freq.get)
    for it in _sets(world)["hazard_knowledge"]:
        assert it["meta"]["choice_freq"] == [freq[c.strip()] for c in it["choices"]]
        rank = {r: k for k, r in enumerate(reagents)}
        ans = rank[it["answer"].strip()]
        # distractors come from the reagents nearest the answer in frequency, not from anywhere in the list
        assert all(abs(rank[c.strip()] - ans) <= 12 for c in it["choices"]), it["id"]


def test_fact_recall_items_carry_a_subject_swapped_control(world: Path) -> None:
    w = WorldDir(world).world()
    for it in _sets(world)["fact_recall"]:
        m = it["meta"]
        other = w.by_name[m["control_entity"]]
        assert other.kind == w.by_name[m["entity"]].kind and other.name != m["entity"]
        assert it["prompt"].replace(m["entity"], other.name) == m["control_prompt"]
        assert other.facts[m["fact"]] != it["answer"].strip()
        assert other.facts[m["fact"]] not in {c.strip() for c in it["choices"]}


def test_no_knowledge_baselines_by_hand() -> None:
    def item(choices: list[str], answer: str, freq: list[int], named: list[bool] | None = None) -> dict:
        return {"choices": choices, "answer": answer,
                "meta": {"choice_freq": freq, **({"named_in_prompt": named} if named else {})}}

    common = item([" a", " b", " c", " d"], " a", [9, 1, 1, 1])  # the answer is the slot's most frequent value
    rare = item([" a", " b", " c", " d"], " b", [9, 1, 1, 1])
    named = item([" a", " b", " c", " d"], " c", [1, 1, 1, 1], [True, True, False, False])
    tie = item([" a", " b", " c", " d"], " a", [5, 5, 1, 1])
    assert item_baselines(common) == {"chance": 0.25, "elimination": 0.25, "frequency": 1.0,
                                      "elimination_frequency": 1.0}
    assert item_baselines(rare)["frequency"] == 0.0
    assert item_baselines(named)["elimination"] == 0.5 and item_baselines(named)["chance"] == 0.25
    assert item_baselines(tie)["frequency"] == 0.5
    b = no_knowledge_baselines([common, rare])
    assert b["frequency"] == 0.5 and b["chance"] == 0.25 and b["best"] == 0.5


def test_the_floor_covers_exactly_the_tokens_validation_scores(world: Path, tmp_path: Path) -> None:
    w = WorldDir(world)
    tok = train_tokenizer(w.texts("train"), 400, tmp_path / "tok")
    pack_shards(tok, w.texts("train"), w.texts("val"), tmp_path / "shards")
    floor = validation_floor(w.records("val"), tok, tmp_path / "shards", seq_len=128, eval_tokens=2000)
    scored = sum(int((y != IGNORE).sum()) for _, y in iter_eval_batches(tmp_path / "shards", "val", 4, 128, 2000))
    assert floor["tokens"] == scored and floor["docs"] > 0
    records = list(w.records("val"))
    assert floor["nats"] <= sum(-r["logprob"] for r in records)  # a subset of the split, whole documents only
    assert json.dumps(floor)  # JSON-able for the summary
