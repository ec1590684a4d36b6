"""Transcoders and attribution graphs: transcoders learn their MLPs; direct effects add up to the logit exactly
(completeness, through frozen attention and norms); the node budget; pruning; the ablation check; and the
circuit-tracer JSON checked the way its viewer reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from scalelab.interp.circuits.attribution import ablation_check, answer_logit, attribute, prune
from scalelab.interp.circuits.graph_json import GRAPH_INDEX, cantor, graph_json, write_graph
from scalelab.interp.circuits.transcoder import load_transcoders, mlp_pairs, train_transcoders
from scalelab.interp.config import CircuitsConfig
from scalelab.interp.sites import Site, logits_of, read_sites
from scalelab.model.config import ModelConfig
from scalelab.model.llama import Llama

VOCAB = 61


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Llama, list, list[int], Path]:
    torch.manual_seed(0)
    model = Llama(ModelConfig(depth=2, aspect_ratio=16, head_dim=16, vocab_size=VOCAB, max_seq_len=64)).eval()
    ids = torch.randint(1, VOCAB, (48, 64))
    out = tmp_path_factory.mktemp("tc")
    index = train_transcoders(model, ids, out, CircuitsConfig(tokens=2900, batch_size=256, k=8, expansion_factor=4))
    assert [row["layer"] for row in index["layers"]] == [0, 1]
    return model, load_transcoders(out), [0, *torch.randint(1, VOCAB, (11,)).tolist()], out


def test_transcoders_learn_their_mlps(setup) -> None:
    model, _, _, out = setup
    index = json.loads((out / "transcoders.json").read_text())
    for row in index["layers"]:
        assert row["fvu"] < 0.9 and row["l0"] <= 8  # better than predicting the mean, k latents at most
    pairs = mlp_pairs(model, 1, torch.randint(1, VOCAB, (2, 16)), 30)
    assert pairs.x.shape == (30, 32) and pairs.y.shape == (30, 32)


def test_direct_effects_add_up_to_the_logit(setup) -> None:
    model, tcs, tokens, _ = setup
    before = logits_of(model, torch.tensor([tokens]))
    graph = attribute(model, tcs, tokens, answer=5, max_feature_nodes=10_000)
    assert graph.logit_effects.sum() == pytest.approx(graph.logit, abs=1e-4)
    assert graph.adjacency[graph.logit_index, :-1].sum() == pytest.approx(graph.logit, abs=1e-4)
    # A feature's row: its pre-activation minus the encoder bias.
    ins = read_sites(model, [Site("mlp_in", 1)], torch.tensor([tokens]))["mlp_in.1"][0]
    later = (graph.features[:, 0] == 1).nonzero().flatten()[0]
    _, pos, j = graph.features[later].tolist()
    pre = ins[pos] @ tcs[1].W_enc[:, j]
    assert graph.adjacency[later].sum() == pytest.approx(float(pre), abs=1e-4)
    torch.testing.assert_close(logits_of(model, torch.tensor([tokens])), before)  # hooks removed


def test_budget_keeps_the_most_influential_features_and_the_logit_row_complete(setup) -> None:
    model, tcs, tokens, _ = setup
    graph = attribute(model, tcs, tokens, answer=5, max_feature_nodes=12, batch_size=4)
    assert graph.n_features == 12 and len(graph.all_features) > 12
    assert graph.logit_effects.sum() == pytest.approx(graph.logit, abs=1e-4)
    pruned = prune(graph, 0.8, 0.98)
    assert pruned["nodes"][graph.token_index(0):].all()  # tokens and the logit are always kept
    assert not pruned["edges"][~pruned["nodes"]].any()


def test_ablation_check_compares_top_and_random_nodes(setup) -> None:
    model, tcs, tokens, _ = setup
    graph = attribute(model, tcs, tokens, answer=5, max_feature_nodes=64)
    pruned = prune(graph, 0.8, 0.98)
    check = ablation_check(model, tcs, graph, pruned["influence"], top_nodes=5, trials=4)
    assert check["nodes"] == 5 and check["random_trials"] == 4
    assert check["clean_logit"] == pytest.approx(graph.logit, abs=1e-4)
    assert answer_logit(model, tcs, tokens, 5, graph.features[:0]) == pytest.approx(graph.logit, abs=1e-5)
    # The most influential nodes move the logit more than random active ones (seeded, so this is fixed).
    assert abs(check["top_drop"]) > abs(check["random_drop_mean"])


def test_graph_json_loads_the_way_the_viewer_reads_it(setup, tmp_path) -> None:
    """The checks circuit-tracer's viewer (`util-cg.js`, formatData) makes when it loads a graph."""
    model, tcs, tokens, _ = setup
    graph = attribute(model, tcs, tokens, answer=5, max_feature_nodes=64)
    pruned = prune(graph, 0.8, 0.98)
    doc = graph_json(graph, pruned, "g1", "a prompt", [f"t{t}" for t in tokens], " five", "scalelab-test", 0.8)
    path = write_graph(doc, tmp_path)
    doc = json.loads(path.read_text())
    index = json.loads((tmp_path / GRAPH_INDEX).read_text())
    assert [g["slug"] for g in index["graphs"]] == ["g1"] and index["graphs"][0]["scan"] == "scalelab-test"
    meta = doc["metadata"]
    assert {"slug", "scan", "transcoder_list", "prompt_tokens", "prompt", "node_threshold"} <= set(meta)
    assert set(doc["qParams"]) == {"pinnedIds", "supernodes", "linkType", "clickedId", "sg_pos"}
    ids = [n["node_id"] for n in doc["nodes"]]
    assert len(ids) == len(set(ids))
    kinds = {"cross layer transcoder", "mlp reconstruction error", "embedding", "logit"}
    for n in doc["nodes"]:
        assert n["feature_type"] in kinds and 0 <= n["ctx_idx"] < len(meta["prompt_tokens"])
        assert n["layer"] == "E" or n["layer"].isdigit()
        assert {"jsNodeId", "feature", "clerp", "influence", "token_prob", "is_target_logit"} <= set(n)
        if n["feature_type"] == "cross layer transcoder":
            layer, latent, pos = map(int, n["node_id"].split("_"))
            assert n["feature"] == cantor(layer, latent) and pos == n["ctx_idx"]
    logit = [n for n in doc["nodes"] if n["feature_type"] == "logit"]
    assert len(logit) == 1 and logit[0]["is_target_logit"] and int(logit[0]["layer"]) == 3
    p = float(re.search(r"\(p=([0-9.]+)\)", logit[0]["clerp"]).group(1))
    assert p == pytest.approx(graph.probability, abs=1e-3)
    assert logit[0]["clerp"].split('"')[1] == " five"  # the viewer reads the token between the quotes
    embeddings = [n for n in doc["nodes"] if n["feature_type"] == "embedding"]
    assert len(embeddings) == len(tokens)
    for link in doc["links"]:
        assert link["source"] in ids and link["target"] in ids and isinstance(link["weight"], float)
    assert any(link["target"] == logit[0]["node_id"] for link in doc["links"])


class CharLM:
    """A stand-in LM whose tokens are characters: " 1251" is " ", "1", "2", "5", "1", as with the world's years."""

    def encode(self, text: str, bos: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


def test_answer_target_skips_what_the_choices_share_and_bare_whitespace() -> None:
    from scalelab.interp.circuits.target import answer_target

    lm = CharLM()
    year = answer_target(lm, " 1251", [" 1293", " 1251", " 1324"])  # type: ignore[arg-type]
    assert lm.decode(year.forced) == " 12" and lm.decode([year.token]) == "5"  # " 12" is also " 1293"'s start
    alone = answer_target(lm, " 1251")  # type: ignore[arg-type]  # no alternatives: only the space is forced
    assert lm.decode(alone.forced) == " " and lm.decode([alone.token]) == "1"
    prefix = answer_target(lm, " 12", [" 123"])  # type: ignore[arg-type]  # nothing tells it from " 123"
    assert lm.decode(prefix.forced) == " " and lm.decode([prefix.token]) == "1"
    word = answer_target(lm, " tobri", [" sheivei", " kriaf"])  # type: ignore[arg-type]
    assert lm.decode(word.forced) == " " and lm.decode([word.token]) == "t"  # only the space is shared
