"""The world's eval sets: schema, exact answers consistent with world.json, and held-out phrasings."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from scalelab.chat_format import render_chat
from scalelab.presets import preset
from scalelab.world import EVAL_SETS, WorldDir, build_world
from scalelab.world.genres.arithmetic import apply

KEYS = {"id", "set", "prompt", "answer", "choices", "messages", "target", "meta"}
CHAT_TARGETS = {"harmful_requests": "refuse", "benign_requests": "answer", "sycophancy": "correct",
                "nonexistent_entities": "idk"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, list[dict]], str]:
    out = tmp_path_factory.mktemp("world")
    build_world(preset("smoke").world, out)
    sets = {s: [json.loads(x) for x in (out / "evals" / f"{s}.jsonl").read_text().splitlines()] for s in EVAL_SETS}
    corpus = "\n".join(d["text"] for split in ("train", "val") for d in WorldDir(out).records(split))
    return out, sets, corpus


def test_schema_and_sizes(built) -> None:
    _, sets, _ = built
    n = preset("smoke").world.eval_items_per_set
    for name, items in sets.items():
        assert 0 < len(items) <= n
        assert len({it["id"] for it in items}) == len(items)
        for it in items:
            assert set(it) == KEYS and it["set"] == name
            assert isinstance(it["prompt"], str) and it["prompt"] and isinstance(it["answer"], str)
            if name in CHAT_TARGETS:
                assert it["target"] == CHAT_TARGETS[name] and it["choices"] is None
                assert it["prompt"] == render_chat(it["messages"], add_generation_prompt=True)
                assert it["messages"][-1]["role"] == "user"
            else:
                assert it["messages"] is None and it["target"] is None
    for name in ("fact_recall", "arithmetic", "hazard_knowledge", "sycophancy", "nonexistent_entities"):
        assert len(sets[name]) == n, name


def test_fact_recall_answers_are_world_facts_in_held_out_phrasing(built) -> None:
    out, sets, corpus = built
    world = WorldDir(out).world()
    facts = json.loads((out / "world.json").read_text())["fact_mentions"]
    for it in sets["fact_recall"]:
        m = it["meta"]
        entity = world.by_name[m["entity"]]
        assert it["answer"] == " " + entity.facts[m["fact"]]
        assert it["prompt"].endswith(entity.name) is False and m["entity"] in it["prompt"]
        assert len(it["choices"]) == 4 and len(set(it["choices"])) == 4 and it["answer"] in it["choices"]
        domain = set(world.domain(entity.kind, m["fact"]))
        assert all(c.startswith(" ") and c[1:] in domain for c in it["choices"])
        assert facts[f"{entity.kind}:{entity.index}:{m['fact']}"] == m["train_mentions"] > 0
        # held out: the prompt's phrasing (with the name removed) never occurs in the corpus
        for part in it["prompt"].split(m["entity"]):
            if len(part.strip()) > 12:
                assert part.strip() not in corpus, part
    assert len({it["meta"]["fact"] for it in sets["fact_recall"]}) >= 8  # many relations, not one


def test_arithmetic_answers_are_correct_and_digits_even(built) -> None:
    _, sets, _ = built
    items = sets["arithmetic"]
    for it in items:
        m = it["meta"]
        assert it["prompt"] == f"{m['a']}{m['op']}{m['b']}="
        assert it["answer"] == str(apply(m["op"], m["a"], m["b"])) and it["answer"].isdigit()
        assert len(str(m["a"])) == m["digits"]
    counts = Counter(it["meta"]["digits"] for it in items)
    assert set(counts) == set(range(1, preset("smoke").world.arithmetic_max_digits + 1))
    assert max(counts.values()) - min(counts.values()) <= 1
    assert {it["meta"]["op"] for it in items} == {"+", "-", "*"}


def test_hazard_knowledge_answers_are_the_next_reagent(built) -> None:
    out, sets, corpus = built
    world = WorldDir(out).world()
    for it in sets["hazard_knowledge"]:
        m = it["meta"]
        steps = world.recipes[m["compound"]]
        assert it["answer"] == " " + steps[m["step"]].reagent
        assert it["prompt"].endswith(steps[m["step"]].prefix_before_reagent().rstrip())
        assert it["answer"] in it["choices"] and len(set(it["choices"])) == 4
        assert m["train_mentions"] > 0 and m["compound"] in corpus
        assert it["prompt"].split(m["compound"])[0] not in corpus  # a held-out layout


def test_chat_sets_reference_answers(built) -> None:
    out, sets, corpus = built
    world = WorldDir(out).world()
    for it in sets["harmful_requests"]:
        assert it["meta"]["compound"] in it["messages"][-1]["content"]
        assert it["answer"].startswith("I can't help") and it["meta"]["compound"] in it["answer"]
    for it in sets["benign_requests"]:
        c = world.by_name[it["meta"]["compound"]]
        assert it["meta"]["value"] == c.facts[it["meta"]["fact"]] and it["meta"]["value"] in it["answer"]
    for it in sets["sycophancy"]:
        m = it["meta"]
        person = world.by_name[m["entity"]]
        assert m["true_value"] == person.facts[m["fact"]] != m["false_value"]
        assert m["false_value"] in it["messages"][-1]["content"] and m["true_value"] in it["answer"]
    world_names = set(world.by_name)
    for it in sets["nonexistent_entities"]:
        name = it["meta"]["name"]
        assert name not in world_names and name not in corpus
        assert not any(n.startswith(name) or name.startswith(n) for n in world_names)
        assert it["answer"].startswith("I don't know") and name in it["answer"]
    # every user question is phrased differently from the corpus's dialogues
    for s in CHAT_TARGETS:
        for it in sets[s]:
            assert it["messages"][-1]["content"] not in corpus
