"""The interp stage on a miniature run directory (small world, tokenizer, shards, an untrained ladder model): its
summary section with every study and the report, the feature store round trip, concept labels and scoring."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch

from scalelab.interp.concepts import neuron_firing, score_against_concepts
from scalelab.interp.features import compute_features, feature_html, feature_markdown, read_feature
from scalelab.interp.text import token_concepts
from scalelab.model.config import ModelConfig
from scalelab.presets import preset
from scalelab.world.config import WorldConfig


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """world/, tokenizer/, shards/ and models/d2/final as `scalelab run` lays them out (the model is untrained)."""
    from scalelab.data.shards import pack_shards
    from scalelab.data.tokenizer import load_tokenizer, train_tokenizer
    from scalelab.model.hf import save_hf
    from scalelab.model.llama import Llama
    from scalelab.world import WorldDir, build_world

    out = tmp_path_factory.mktemp("interp_run")
    build_world(WorldConfig(n_people=30, n_towns=6, n_creatures=6, n_tools=6, n_compounds=3, n_reagents=6,
                            n_docs=500, eval_items_per_set=10, n_sft_dialogues=10), out / "world")
    world = WorldDir(out / "world")
    train_tokenizer((d["text"] for d in world.records("train")), 300, out / "tokenizer")
    pack_shards(load_tokenizer(out / "tokenizer"), (d["text"] for d in world.records("train")),
                (d["text"] for d in world.records("val")), out / "shards")
    torch.manual_seed(0)
    model = Llama(ModelConfig(depth=2, aspect_ratio=16, head_dim=16, vocab_size=300, max_seq_len=64))
    save_hf(model, out / "models" / "d2" / "final", out / "tokenizer")
    return out


def _stage_cfg():
    """The smoke preset shrunk to the miniature run: every study, each in a second or so."""
    cfg = preset("smoke")
    cfg.ladder = [2]
    cfg.train.progress = False
    cfg.model = ModelConfig(depth=2, aspect_ratio=16, head_dim=16, vocab_size=300, max_seq_len=64)
    cfg.train.tokens = 2048  # the universality study's second seed: a few steps, enough for the wiring
    cfg.interp.train.tokens, cfg.interp.cache.tokens, cfg.interp.sae.expansion_factor = 8192, 4096, 4
    ss = cfg.interp.sae_scaling
    ss.widths, ss.ks, ss.k, ss.width, ss.token_scales = [2, 4], [2, 8], 8, 2, [2.0]
    ss.tokens, ss.cache_tokens = 2048, 4096
    cfg.interp.superposition.enabled = False  # its own tests cover it (tests/test_interp_superposition.py)
    cfg.interp.probe.rows, cfg.interp.probe.max_iter = 16, 20
    cfg.interp.circuits.tokens, cfg.interp.circuits.random_trials, cfg.interp.circuits.max_feature_nodes = 2048, 4, 64
    cfg.interp.steering.prompts, cfg.interp.steering.eval_items, cfg.interp.steering.scales = 3, 4, [0.0, 10.0]
    cfg.interp.steering.new_tokens = 8
    return cfg


@pytest.fixture(scope="module")
def interp_section(run_dir: Path) -> dict:
    from scalelab.interp.stage import run_interp
    from scalelab.stage import Context

    ctx = Context.standalone(_stage_cfg(), run_dir, log=lambda s: None)
    return run_interp(ctx, {})


def test_stage_writes_a_saelens_folder_metrics_and_ground_truth(run_dir, interp_section) -> None:
    it = interp_section
    sae_dir = Path(it["sae_dir"])
    assert sae_dir == run_dir / "interp" / "d2"
    assert {"cfg.json", "sae_weights.safetensors", "training_metrics.json", "features.sqlite"} <= {
        p.name for p in sae_dir.iterdir()}
    assert not (sae_dir / "cache").exists()
    assert it["site"] == "resid_post.1" and it["d_sae"] == 4 * 32
    ev = it["eval"]
    for key in ("fvu", "l0", "dead_frac", "dense_frac", "ce_recovered", "kl_sae"):
        assert isinstance(ev[key], float)
    assert 0 < ev["l0"] <= 16 and "1" in ev["positions"]
    gt = it["ground_truth"]
    assert gt["features"]["units"] == 128 and gt["neurons"]["site"] == "mlp_hidden.1"
    assert gt["features"]["concepts_present"] > 5
    json.dumps(it)  # JSON-able for summary.json


def test_stage_runs_every_study(run_dir, interp_section) -> None:
    it = interp_section
    probes = it["probes"]["groups"]
    assert probes["entity_type"]["layers"][0]["layer"] == -1 and len(probes["entity_type"]["layers"]) == 3
    un = it["universality"]
    assert un["a"] == "d2" and un["b_seed"] == "d2-seed1" and "sizes" not in un  # one rung: no second size
    assert (run_dir / "interp" / "universality" / "d2-seed1" / "final" / "config.json").is_file()
    assert un["seeds"]["features"]["units"] > 0 and 0 < un["seeds"]["neurons"]["median"] <= 1
    graphs = it["circuits"]["graphs"]
    assert [g["kind"] for g in graphs] == ["fact", "recipe"]
    for g in graphs:
        assert g["direct_effects_sum"] == pytest.approx(g["answer_logit"], abs=1e-3)  # completeness
        assert Path(g["graph_json"]).is_file() and "top_drop" in g["ablation"]
        # the traced token is the answer's deciding one: content, never the bare space answers begin with
        assert g["answer"].strip() and (g["forced"] + g["answer"]).strip()
        assert g["full_answer"].startswith(g["forced"] + g["answer"])
    st = it["steering"]
    assert st["concepts"] and set(next(iter(st["concepts"].values()))["scales"]) == {"0", "10"}
    assert {"clean", "ablated", "random_ablated"} <= set(st["hazard"])
    ss = it["sae_scaling"]
    assert {r["d_sae"] for r in ss["runs"]} == {64, 128} and ss["fits"]["k"]["points"] == 2
    assert it["interp_seconds"] > 0


def test_a_rerun_skips_every_step_and_keeps_the_measured_stage_time(run_dir, interp_section) -> None:
    from scalelab.interp.stage import run_interp
    from scalelab.stage import STAGE_SECONDS, Context

    logs: list[str] = []
    ctx = Context.standalone(_stage_cfg(), run_dir, log=logs.append)
    again = run_interp(ctx, {})
    assert ctx.built == 0 and not any("running" in line for line in logs)
    # the skipping took a moment; the section still reports the time the work took, as recorded then
    assert again["interp_seconds"] == interp_section["interp_seconds"]
    assert json.loads((run_dir / STAGE_SECONDS).read_text())["interp"] == interp_section["interp_seconds"]
    assert again["circuits"] == interp_section["circuits"]


def test_report_section_renders(tmp_path, interp_section) -> None:
    from scalelab.interp.stage import section_interp

    md = section_interp({"interp": interp_section}, tmp_path)
    assert "CE recovered" in md and "MLP neurons" in md and "![SAE training](interp_sae.png)" in md
    for title, png in (("linear probes", "interp_probes.png"), ("universality", "interp_universality.png"),
                       ("circuits", "interp_circuits.png"), ("steering", "interp_steering.png"),
                       ("SAE scaling laws", "interp_sae_scaling.png")):
        assert f"Interpretability: {title}" in md and (tmp_path / png).is_file(), title
    assert (tmp_path / "interp_sae.png").is_file()
    assert section_interp({}, tmp_path) == ""


def test_feature_store_round_trip(run_dir, interp_section, tmp_path) -> None:
    sae_dir = Path(interp_section["sae_dir"])
    db = compute_features(sae_dir, run_dir / "world" / "val.jsonl", db_path=tmp_path / "f.sqlite", n_rows=12,
                          seq_len=32, top_k=3, n_quantiles=2)
    con = sqlite3.connect(db)
    n_feat = con.execute("SELECT COUNT(*) FROM features").fetchone()[0]
    densest = con.execute("SELECT id, density FROM features ORDER BY density DESC LIMIT 1").fetchone()
    con.close()
    assert n_feat == 128
    feat = read_feature(db, densest[0])
    assert feat["density"] == pytest.approx(densest[1]) and feat["density"] > 0
    assert sum(feat["hist"]) == round(feat["density"] * feat["info"]["n_tokens"])
    tops = [e for e in feat["examples"] if e["kind"] == "top"]
    assert len(tops) == 3 and tops[0]["max_act"] >= tops[1]["max_act"] >= tops[2]["max_act"]
    assert max(tops[0]["acts"]) == pytest.approx(tops[0]["max_act"], rel=1e-3)
    assert len(feat["promoted"]) == 10 and feat["promoted"][0][1] >= feat["promoted"][-1][1]
    assert f"Feature {densest[0]}" in feature_markdown(feat) and "<span" in feature_html(feat)
    with pytest.raises(ValueError, match=r"valid ids are 0\.\.127"):
        read_feature(db, 999)


def test_token_concepts_follow_character_spans() -> None:
    spans = [[0, 4, "person"], [4, 11, "template"], [11, 15, "number"]]
    offsets = [(0, 0), (0, 2), (2, 5), (5, 11), (11, 13), (13, 15), (15, 16)]
    assert token_concepts(offsets, spans, {"person": 0, "template": 1, "number": 2}) == [-1, 0, 0, 1, 2, 2, -1]


def test_concept_scoring_tells_a_monosemantic_unit_from_a_polysemantic_one() -> None:
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2] * 10)
    mono = labels == 1  # fires exactly on concept 1
    poly = (labels == 0) | (labels == 2)  # fires on two concepts
    summary, scores = score_against_concepts(torch.stack([mono, poly], 1), labels, ["a", "b", "c", "d"])
    assert scores["precision"][0] == 1.0 and scores["recall"][0] == 1.0 and int(scores["concept"][0]) == 1
    assert scores["precision"][1] == pytest.approx(0.5)
    assert summary["precise_units"] == 1 and summary["uncaptured_concepts"] == []  # "d" never occurs
    assert summary["concepts_present"] == 3
    acts = torch.randn(1000, 5)
    assert neuron_firing(acts, 0.1).float().mean(0).sub(0.1).abs().max() < 0.01


def test_cli_interp_features_and_bad_inputs(run_dir, interp_section, tmp_path) -> None:
    from typer.testing import CliRunner

    from scalelab.cli import app

    runner = CliRunner()
    sae_dir = interp_section["sae_dir"]
    res = runner.invoke(app, ["interp", "features", sae_dir, "--feature", "0", "--html", str(tmp_path / "f.html")])
    assert res.exit_code == 0, res.output
    assert "### Feature 0" in res.output and (tmp_path / "f.html").is_file()
    model = str(run_dir / "models" / "d2" / "final")
    res = runner.invoke(app, ["interp", "sae", "--model", model, "--text", str(run_dir / "world"),
                              "--set", "interp.cache.site=resid_middle.1", "--out", str(tmp_path / "sae")])
    assert res.exit_code == 2 and "valid sites" in res.output
    not_lm = tmp_path / "bert"
    not_lm.mkdir()
    (not_lm / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    res = runner.invoke(app, ["interp", "sae", "--model", str(not_lm), "--text", str(run_dir / "world"),
                              "--out", str(tmp_path / "sae")])
    assert res.exit_code == 2 and "not a causal LM" in res.output


def test_features_refuse_an_sae_of_another_width(run_dir, interp_section, tmp_path) -> None:
    from scalelab.interp.sae import SAEConfig, make_sae
    from scalelab.interp.saelens import save_sae

    wrong = make_sae(SAEConfig(arch="topk", d_in=48, d_sae=96))
    save_sae(wrong, tmp_path, metadata={"model_name": str(run_dir / "models" / "d2" / "final"),
                                        "site": "resid_post.1"})
    with pytest.raises(ValueError, match="d_in=48 does not match"):
        compute_features(tmp_path, run_dir / "world" / "val.jsonl", n_rows=2, seq_len=32)


def test_stage_on_real_text_runs_what_needs_no_labels(run_dir, tmp_path) -> None:
    """corpus = a text file: the SAE, its metrics and feature store, and circuits with the model's own next token;
    no ground truth, probes or steering (they need the world's labels)."""
    import shutil

    from scalelab.interp.stage import run_interp
    from scalelab.stage import Context

    for part in ("tokenizer", "shards", "models"):
        shutil.copytree(run_dir / part, tmp_path / part)
    text = tmp_path / "corpus.txt"
    docs = [json.loads(line)["text"] for line in (run_dir / "world" / "train.jsonl").read_text().splitlines()]
    text.write_text("\n\n".join(docs))
    cfg = preset("smoke")
    cfg.corpus, cfg.ladder, cfg.train.progress = str(text), [2], False
    cfg.interp.train.tokens, cfg.interp.cache.tokens, cfg.interp.sae.expansion_factor = 4096, 2048, 4
    cfg.interp.superposition.enabled = cfg.interp.universality.enabled = cfg.interp.sae_scaling.enabled = False
    cfg.interp.circuits.tokens, cfg.interp.circuits.random_trials, cfg.interp.circuits.max_feature_nodes = 2048, 2, 32
    it = run_interp(Context.standalone(cfg, tmp_path, log=lambda s: None), {})
    assert "ground_truth" not in it and "probes" not in it and "steering" not in it
    assert (tmp_path / "interp" / "text" / "train.jsonl").is_file()
    assert (Path(it["sae_dir"]) / "features.sqlite").is_file() and isinstance(it["eval"]["fvu"], float)
    graphs = it["circuits"]["graphs"]
    assert [g["kind"] for g in graphs] == ["text", "text"]
    assert graphs[0]["direct_effects_sum"] == pytest.approx(graphs[0]["answer_logit"], abs=1e-3)
