"""Dense retrieval from a local encoder folder (`--embedder`), fused with BM25 by reciprocal rank fusion.

No embedding model can be downloaded where these run, so the encoder is a tiny randomly initialised BERT with a
WordPiece vocabulary of the test documents' words, saved as `save_pretrained` writes any encoder. Random weights
rank nothing meaningfully; what holds for any encoder is tested: a text's embedding is its own nearest neighbour
(cosine 1), every hit is a real passage, the fusion ranks first what both retrievers rank first and keeps the
union of their passages, and the app and the benchmark pick the embedder up or refuse a bad one in one line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from scalelab.cli import app as cli_app
from scalelab.errors import InputError, MissingInput
from scalelab.web.app import ServeSettings, create_app
from scalelab.web.ground.dense import RRF_K, load_embedder, reciprocal_rank_fusion
from scalelab.web.ground.docs import Document, read_folder, read_world
from scalelab.web.ground.evaluate import evaluate
from scalelab.web.ground.index import FUSION_DEPTH, PassageIndex
from scalelab.world.reader import WorldDir

ROOT = Path(__file__).resolve().parents[1]
TEXTS = {
    "otters.md": "# Otters\nThe river otter eats fish. It lives in burrows by the water.\n",
    "lamps.txt": "Brass lamps are polished weekly. Copper kettles are not.",
    "owls.txt": "The barn owl hunts mice at night. Owls nest in old barns.",
    "bees.txt": "Bees make honey in summer. The queen bee lays the eggs.",
    "ships.txt": "Old ships sail north in spring. The harbour master counts them.",
}
QUESTIONS = ("What does the river otter eat?", "Where do owls nest?")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("dense_docs")
    for name, text in TEXTS.items():
        (d / name).write_text(text)
    return d


def _save_tiny_bert(out: Path, words: set[str], seed: int = 0) -> Path:
    """A randomly initialised 1-layer BERT and a WordPiece tokenizer over `words`, saved with save_pretrained."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    # the vocabulary as a mapping: transformers 5's BertTokenizerFast ignores `vocab_file` (every word then [UNK])
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    assert tokenizer.unk_token not in tokenizer.tokenize(" ".join(sorted(words)))
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=128))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    words = {w for text in (*TEXTS.values(), *QUESTIONS) for w in re.findall(r"\w+|[^\w\s]", text.lower())}
    return _save_tiny_bert(tmp_path_factory.mktemp("enc") / "tiny-bert", words)


@pytest.fixture(scope="module")
def index(folder, encoder) -> PassageIndex:
    return PassageIndex(read_folder(folder), max_sentences=1, embedder=load_embedder(encoder))


def test_dense_search_returns_k_real_passages_nearest_first(index):
    assert np.allclose(np.linalg.norm(index.dense.vectors, axis=1), 1.0, atol=1e-5)
    assert index.dense.vectors.shape == (len(index.passages), 32)
    hits = index.dense_search("What does the river otter eat?", 4)
    assert len(hits) == 4 and len({h.passage for h in hits}) == 4
    assert all(h.passage in index.passages for h in hits) and [h.rank for h in hits] == [0, 1, 2, 3]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and all(-1.0 - 1e-5 <= s <= 1.0 + 1e-5 for s in scores)
    assert len(index.dense_search("owl", 10_000)) == len(index.passages)


def test_a_passages_own_text_ranks_it_first(index):
    """A query identical to a passage embeds to the same unit vector (cosine 1), batching and padding aside."""
    for p in index.passages:
        [top] = index.dense_search(index.text(p), 1)
        assert top.passage == p and top.score == pytest.approx(1.0, abs=1e-4)


def test_reciprocal_rank_fusion():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["a", "d", "b"]])
    assert [item for item, _ in fused] == ["a", "b", "d", "c"]
    scores = dict(fused)
    assert scores["a"] == pytest.approx(2 / (RRF_K + 1)) and scores["b"] == pytest.approx(1 / 62 + 1 / 63)
    assert [item for item, _ in reciprocal_rank_fusion([["x", "y"], ["y", "x"]])] == ["x", "y"]  # tie: first's order


def test_hybrid_search_fuses_both_rankings(index):
    """A passage both retrievers rank first is first in the fusion, which holds the union of their passages."""
    target = next(p for p in index.passages if "barn owl" in index.text(p))
    query = index.text(target)
    bm25, dense = index.bm25(query, FUSION_DEPTH), index.dense_search(query, FUSION_DEPTH)
    assert bm25[0].passage == target == dense[0].passage
    fused = index.search(query, len(index.passages))
    assert fused[0].passage == target and fused[0].score == pytest.approx(2 / (RRF_K + 1))
    assert {h.passage for h in fused} == {h.passage for h in bm25} | {h.passage for h in dense}
    assert len(index.search(query, 3)) == 3 and "dense" in index.retriever and "tiny-bert" in index.retriever


def test_without_an_embedder_retrieval_is_bm25_alone(folder):
    plain = PassageIndex(read_folder(folder), max_sentences=1)
    q = "Where do owls nest?"
    assert plain.dense is None and plain.retriever == "bm25"
    assert plain.search(q, 3) == plain.bm25(q, 3)
    with pytest.raises(InputError, match="--embedder"):
        plain.dense_search(q, 3)


def test_a_sentence_transformers_pooling_config_is_followed(encoder, tmp_path):
    """CLS pooling when the folder's Pooling module asks for it; a module that would change the vectors is refused."""
    st = tmp_path / "st"
    st.mkdir()
    for f in encoder.iterdir():
        (st / f.name).write_bytes(f.read_bytes())
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True,
                                                              "pooling_mode_mean_tokens": False}))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (st / "modules.json").write_text(json.dumps(modules))
    emb = load_embedder(st)
    assert emb.pooling == "cls" and load_embedder(encoder).pooling == "mean"
    enc = emb.tokenizer(["Bees make honey."], return_tensors="pt")
    with torch.no_grad():
        cls = torch.nn.functional.normalize(emb.model(**enc).last_hidden_state[:, 0], dim=-1).numpy()
    assert np.allclose(emb.encode(["Bees make honey."]), cls, atol=1e-5)
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (st / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(InputError, match="module Dense"):
        load_embedder(st)


def test_a_bad_embedder_is_one_clear_line(tmp_path, web_run):
    absent = tmp_path / "no-such-encoder"
    with pytest.raises(MissingInput, match=re.escape(str(absent)) + ".*pass --embedder a local encoder folder"):
        load_embedder(absent)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is not an encoder folder"):
        load_embedder(tmp_path / "empty")
    res = CliRunner().invoke(cli_app, ["serve", "--out", str(web_run), "--embedder", str(absent)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    [line] = res.output.strip().splitlines()
    assert line.startswith(f"error: embedder {absent} ") and "--embedder" in line
    bench = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "web_grounded.py"), "--run", str(web_run),
                            "--embedder", str(absent)], capture_output=True, text=True, timeout=300)
    assert bench.returncode == 2 and "Traceback" not in bench.stderr
    assert bench.stderr.strip().splitlines() == [line]


def test_serve_with_an_embedder_answers_with_citations(web_run, folder, encoder, monkeypatch):
    """`scalelab serve --embedder DIR`: the app it would run retrieves with the fusion and answers with a citation."""
    served: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    res = CliRunner().invoke(cli_app, ["serve", "--out", str(web_run), "--docs", str(folder),
                                       "--embedder", str(encoder)])
    assert res.exit_code == 0, res.output
    client = TestClient(served[0], base_url="http://127.0.0.1")
    a = client.post("/api/ask", json={"question": "What does the river otter eat?", "model": "none"}).json()
    assert a["supported"] and a["answer"] == "The river otter eats fish." and "dense" in a["retriever"]
    c = a["citations"][0]
    assert client.get(f"/api/documents/{c['doc_id']}").json()["text"][c["start"]:c["end"]] == a["answer"]
    assert len(client.get("/api/search", params={"q": "otter", "k": 4}).json()) == 4  # dense adds non-matching ones
    assert "BM25 fused with" in client.get("/ask", params={"q": "Where do owls nest?", "model": "none"}).text
    plain = TestClient(create_app(ServeSettings(run=web_run, docs=folder)), base_url="http://127.0.0.1")
    assert plain.post("/api/ask", json={"question": "What does the river otter eat?",
                                        "model": "none"}).json()["retriever"] == "bm25"


def test_evaluate_reports_recall_for_each_retriever(web_run, encoder):
    """With an embedder, recall@k is reported for BM25, dense and the fusion; BM25's is the BM25-only index's."""
    docs: list[Document] = read_world(web_run / "world")
    world = WorldDir(web_run / "world").world()
    plain = evaluate(PassageIndex(docs), world, None, n=20)
    hybrid = evaluate(PassageIndex(docs, embedder=load_embedder(encoder)), world, None, n=20)
    by = hybrid["recall_at_k_by_retriever"]
    assert by["bm25"] == plain["recall_at_k"] and by["fused"] == hybrid["recall_at_k"]
    assert 0.0 <= by["dense"] <= 1.0 and "recall_at_k_by_retriever" not in plain and plain["retriever"] == "bm25"
