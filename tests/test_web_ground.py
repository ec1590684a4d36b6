"""Grounded answers: documents of every format become passages with exact spans, BM25 finds them, the answerer cites
a sentence that states the answer, and says so when the documents do not."""

from __future__ import annotations

import json

import pytest

from scalelab.errors import InputError, MissingInput
from scalelab.web.ground.answer import NOT_SUPPORTED, GroundedAnswerer
from scalelab.web.ground.docs import html_text, read_folder, read_world, sentence_spans, split_passages
from scalelab.web.ground.evaluate import evaluate
from scalelab.web.ground.index import PassageIndex
from scalelab.world.reader import WorldDir


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "otters.md").write_text("# Otters\nThe river otter eats fish. It lives in burrows.\n")
    (tmp_path / "plain.txt").write_text("Brass lamps are polished weekly. Copper kettles are not.")
    (tmp_path / "page.html").write_text("<html><head><title>Owls</title><script>alert(1)</script></head>"
                                        "<body><p>The barn owl hunts mice.</p></body></html>")
    (tmp_path / "more.jsonl").write_text(json.dumps({"title": "Bees", "text": "Bees make honey."}) + "\n")
    (tmp_path / "skip.pdf").write_text("not read")
    return tmp_path


def test_every_format_is_read_with_ids_and_titles(folder):
    docs = {d.id: d for d in read_folder(folder)}
    assert set(docs) == {"notes/otters.md", "plain.txt", "page.html", "more.jsonl:1"}
    assert docs["page.html"].title == "Owls" and "alert" not in docs["page.html"].text
    assert docs["more.jsonl:1"].title == "Bees" and docs["notes/otters.md"].title == "Otters"


def test_passage_spans_point_at_the_text(folder):
    docs = read_folder(folder)
    for p in split_passages(docs, max_sentences=1):
        text = docs[p.doc].text[p.start:p.end]
        assert text == text.strip() and text
    assert sentence_spans("A b. C d!\nE f") == [(0, 4), (5, 9), (10, 13)]


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(MissingInput):
        read_folder(tmp_path / "absent")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match=r"bad\.jsonl line 1"):
        read_folder(tmp_path)
    with pytest.raises(InputError, match="no documents"):
        PassageIndex([])


def test_html_text_drops_scripts_and_styles():
    title, text = html_text("<title>T</title><style>p{}</style><p>Hello <b>there</b></p><script>x()</script>")
    assert title == "T" and text == "Hello there"


def test_answer_cites_the_stating_sentence_and_abstains_on_unknown_names(folder):
    index = PassageIndex(read_folder(folder))
    a = GroundedAnswerer(index).answer("What does the river otter eat?")
    assert a.supported and a.answer == "The river otter eats fish."
    cite = a.citations[0]
    assert index.document(cite.doc_id).text[cite.start:cite.end] == a.answer
    assert cite.passage_start <= cite.start < cite.end <= cite.passage_end
    unknown = GroundedAnswerer(index).answer("What does Zorblax eat?")
    assert not unknown.supported and unknown.answer == NOT_SUPPORTED and "Zorblax" in unknown.reason


def test_measured_on_the_smoke_world(web_run):
    """Without a model (term overlap ranks the sentences): BM25 finds a stating sentence for almost every stated
    fact, and every question about an entity that does not exist is declined."""
    world = web_run / "world"
    index = PassageIndex(read_world(world))
    res = evaluate(index, WorldDir(world).world(), None, n=40)
    lexical = res["systems"]["retrieval + term overlap (no model)"]
    assert res["questions"]["stated"] == 40 and res["questions"]["unknown"] == 40
    assert res["recall_at_k"] >= 0.9
    assert lexical["abstain_unknown"] == 1.0
    assert lexical["accuracy_stated"] >= 0.6 and lexical["citation_precision"] >= 0.8
