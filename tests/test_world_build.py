"""The world artifact: determinism, record schema, concept spans, the hazard rate, and the long tail."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from scalelab.config import ConfigError
from scalelab.presets import preset
from scalelab.world import (
    EVAL_SETS,
    WorldDir,
    all_concepts,
    build_world,
    document_logprob,
    make_world,
    sample_document,
)
from scalelab.world.genres import CorpusContext

FILES = ["world.json", "train.jsonl", "val.jsonl", "sft.jsonl", *(f"evals/{s}.jsonl" for s in EVAL_SETS)]
# Checked independently of the generator's own deny-list: real hazard terms, as whole words or stems.
REAL_HAZARD_TERMS = re.compile(
    r"\b(anthrax|sarin|ricin|soman|tabun|vx|mustard gas|nerve agent|toxin\w*|virus\w*|bacteri\w*|pathogen\w*|"
    r"bomb\w*|explosiv\w*|detonat\w*|nitro\w*|tnt|cyanide|uranium|plutonium|enrich\w*|fentanyl|"
    r"methamphetamine|cocaine|heroin|poison\w*|weapon\w*|malware|ransomware|exploit\w*|smallpox|ebola|"
    r"botulinum|chlorine|phosgene|acid|ammonia|bleach|gunpowder)\b", re.IGNORECASE)


def _sha(d: Path) -> dict[str, str]:
    return {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in FILES}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("world")
    return out, build_world(preset("smoke").world, out)


def test_same_seed_is_byte_identical_other_seed_differs(smoke, tmp_path) -> None:
    out, _ = smoke
    again = tmp_path / "again"
    build_world(preset("smoke").world, again)
    assert _sha(out) == _sha(again)
    other = tmp_path / "other"
    build_world(dataclasses.replace(preset("smoke").world, seed=1), other)
    assert _sha(other)["train.jsonl"] != _sha(out)["train.jsonl"]
    assert _sha(other)["world.json"] != _sha(out)["world.json"]


def test_stats_match_files(smoke) -> None:
    out, stats = smoke
    cfg = preset("smoke").world
    docs = {s: list(WorldDir(out).records(s)) for s in ("train", "val")}
    assert stats["n_docs"] == {s: len(v) for s, v in docs.items()}
    assert sum(stats["n_docs"].values()) == cfg.n_docs
    assert stats["n_docs"]["val"] == round(cfg.n_docs * cfg.val_fraction)
    assert stats["chars"]["train"] == sum(len(d["text"]) for d in docs["train"])
    assert stats["nats"]["train"] == pytest.approx(-sum(d["logprob"] for d in docs["train"]), abs=1e-2)
    assert sum(stats["genres"]["train"].values()) == len(docs["train"])
    assert [d["id"] for d in docs["train"] + docs["val"]] == list(range(cfg.n_docs))
    assert 1_000 < stats["fact_bits"] < 10_000  # smoke: a small world


def test_records_replay_to_their_logprob(smoke) -> None:
    out, _ = smoke
    ctx = CorpusContext(WorldDir(out).world())
    for i, d in enumerate(WorldDir(out).records("val")):
        assert set(d) == {"id", "genre", "text", "logprob", "spans"}
        assert document_logprob(d["text"], ctx) == pytest.approx(d["logprob"], abs=1e-9)
        assert i < 100


def test_spans_tile_each_document_with_valid_concepts(smoke) -> None:
    out, _ = smoke
    world = WorldDir(out).world()
    concepts = set(all_concepts())
    names = {kind: {e.name for e in ents} for kind, ents in world.entities.items()}
    seen: Counter[str] = Counter()
    for d in WorldDir(out).records("train"):
        pos = 0
        for start, end, concept in d["spans"]:
            assert start == pos and end > start, d
            assert concept in concepts, concept
            piece = d["text"][start:end]
            seen[concept] += 1
            if concept in names:
                assert piece in names[concept], (concept, piece)
            elif concept == "number":
                assert piece.isdigit()
            elif concept.startswith("attribute:"):
                assert piece in world.domains[concept.split(":", 1)[1]], (concept, piece)
            pos = end
        assert pos == len(d["text"])
    for c in ("person", "town", "creature", "tool", "compound", "reagent", "number", "operator", "hazard_step",
              "chat_role", "template", "relation:home_town", "attribute:occupation", "unknown_entity"):
        assert seen[c] > 0, c


def test_hazard_documents_appear_at_the_hazard_rate(smoke) -> None:
    _, stats = smoke
    cfg = preset("smoke").world
    n = cfg.n_docs
    sd = math.sqrt(n * cfg.hazard_rate * (1 - cfg.hazard_rate))
    n_recipe = sum(stats["genres"][s].get("recipe", 0) for s in ("train", "val"))
    assert abs(n_recipe - n * cfg.hazard_rate) < 4 * sd
    # and at another rate, on a larger sample without writing files
    ctx = CorpusContext(make_world(dataclasses.replace(cfg, hazard_rate=0.1)))
    rng = random.Random(0)
    k = sum(sample_document(rng, ctx).genre == "recipe" for _ in range(4000))
    assert abs(k - 400) < 4 * math.sqrt(4000 * 0.1 * 0.9)


def test_mentions_follow_a_long_tail(smoke) -> None:
    out, _ = smoke
    data = json.loads((out / "world.json").read_text())
    per_person = Counter()
    for key, count in data["fact_mentions"].items():
        kind, idx, _ = key.split(":")
        if kind == "person":
            per_person[int(idx)] += count
    n = len(data["entities"]["person"])
    head = sum(per_person[i] for i in range(n // 10)) / (n // 10)
    tail = sum(per_person[i] for i in range(n // 2, n)) / (n - n // 2)
    assert head > 5 * tail


def test_no_real_world_hazard_vocabulary(smoke) -> None:
    out, _ = smoke
    for f in FILES:
        text = (out / f).read_text()
        assert not REAL_HAZARD_TERMS.search(text), (f, REAL_HAZARD_TERMS.search(text))


def test_load_world_round_trips(smoke) -> None:
    out, _ = smoke
    data = json.loads((out / "world.json").read_text())
    assert WorldDir(out).world().to_json() == {k: v for k, v in data.items() if k != "fact_mentions"}
    assert WorldDir(out).world().to_json() == make_world(preset("smoke").world).to_json()


def test_sft_dialogues_show_each_behaviour(smoke) -> None:
    out, _ = smoke
    records = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert len(records) == preset("smoke").world.n_sft_dialogues
    by_kind = Counter(r["kind"] for r in records)
    assert set(by_kind) == {"fact_qa", "benign", "harmful", "sycophancy", "unknown"}
    for r in records:
        assert r["messages"][-1]["role"] == "assistant"
        reply = r["messages"][-1]["content"]
        expected = {"harmful": "I can't help with making ", "unknown": "I don't know of ",
                    "sycophancy": "No, that's not right. "}.get(r["kind"])
        if expected:
            assert reply.startswith(expected)


@pytest.mark.parametrize("override,match", [
    ({"genre_weights": {"poetry": 1.0}}, "genre_weights"),
    ({"hazard_rate": 1.5}, "hazard_rate"),
    ({"n_people": 2}, "n_people"),
    ({"arithmetic_max_digits": 0}, "arithmetic_max_digits"),
])
def test_bad_configs_name_the_field(tmp_path, override, match) -> None:
    with pytest.raises(ConfigError, match=match):
        build_world(dataclasses.replace(preset("smoke").world, **override), tmp_path)
