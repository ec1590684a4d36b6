"""The RSP gate in the web app: it decides as `scalelab rsp gate` and `scalelab chat` do, with safeguards on the
output filter acts on chat, streamed chat and grounded answers, and a model chat refuses is refused by /api/ask."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from scalelab.rsp.gate import GateError, GateRefused, check_serving, gate, read_determination
from scalelab.rsp.policy import load_policy
from scalelab.rsp.safeguards.output_filter import BLOCKED_REPLY
from scalelab.web.app import AppContext, ServeSettings
from scalelab.web.catalog import ModelEntry
from scalelab.web.ground.docs import read_world
from scalelab.web.ground.evaluate import make_questions
from scalelab.web.ground.index import PassageIndex
from scalelab.world.reader import WorldDir
from web_fixtures import chat_body

ZORVATH = {"question": "Where does Zorvath the otter live?"}


def _events(client, body: dict) -> list[tuple[str, object]]:
    with client.stream("POST", "/api/chat/stream", json=body) as r:
        assert r.status_code == 200, r.read()
        lines = list(r.iter_lines())
    kinds = [line[7:] for line in lines if line.startswith("event: ")]
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    return list(zip(kinds, data, strict=True))


def test_web_verdicts_are_the_gates(client, web_run):
    """Every fixture model: served with safeguards on exactly when `gate()` (what `scalelab rsp gate` runs) says ok;
    refused with them off whenever a threshold was crossed; the gate's unmet reasons are the refusal's."""
    policy = load_policy("default")
    models = {m["name"]: m for m in client.get("/api/models").json()}
    verdicts = {}
    for name, m in models.items():
        path = Path(m["path"])
        if read_determination(path) is None:
            with pytest.raises(GateError, match="rsp assess"):
                gate(path, policy)
            assert m["gate"]["off"] == m["gate"]["on"] == {"served": True,
                                                           "reason": "never assessed: nothing to enforce"}
            verdicts[name] = "never assessed"
            continue
        res = gate(path, policy)
        assert m["gate"]["on"]["served"] == res.ok and m["gate"]["off"]["served"] == (not res.crossed)
        for reason in res.reasons[1:] if not res.ok else []:
            assert reason in m["gate"]["on"]["reason"]
        verdicts[name] = res.ok
    assert verdicts == {"d1": "never assessed", "sft": "never assessed", "gated": False, "guarded": True}


def test_safeguards_on_apply_the_output_filter_to_chat_and_stream(client, web_run):
    guarded = web_run / "posttrain" / "guarded"
    with pytest.raises(GateRefused) as refused:
        check_serving(guarded, False)
    off = client.post("/api/chat", json=chat_body("guarded"))
    assert off.status_code == 403 and off.json()["error"] == str(refused.value)
    r = client.post("/api/chat", json=chat_body("guarded", safeguards=True)).json()
    assert r["filtered"] and r["safeguards"] and r["reply"] == BLOCKED_REPLY and r["tokens"] > 0
    events = _events(client, chat_body("guarded", safeguards=True))
    # judged before anything is shown: one token event, the filter's reply, then done; nothing the model wrote
    assert [k for k, _ in events] == ["token", "done"] and events[0][1] == BLOCKED_REPLY
    assert events[1][1]["filtered"] and events[1][1]["reply"] == BLOCKED_REPLY
    plain = client.post("/api/chat", json=chat_body("d1", safeguards=True)).json()  # no filter built for d1
    assert not plain["filtered"] and plain["reply"] != BLOCKED_REPLY


def test_ask_with_a_model_cites_a_real_span(client):
    a = client.post("/api/ask", json={**ZORVATH, "model": "d1"}).json()
    assert a["model"] == "d1" and "PMI" in a["scorer"] and a["supported"] and "Ambrel" in a["answer"]
    c = a["citations"][0]
    doc = client.get(f"/api/documents/{c['doc_id']}").json()
    assert doc["text"][c["start"]:c["end"]] == a["answer"] == c["text"]


def test_ask_with_a_model_on_the_world_cites_real_spans(web_server, web_run):
    """The live server answers from the run's world; every supported answer is a span of its cited document."""
    world = web_run / "world"
    pairs = make_questions(WorldDir(world).world(), PassageIndex(read_world(world)), 3)
    questions = [q for q, _ in pairs if q.group == "stated"]
    supported = 0
    for q in questions:
        a = httpx.post(web_server + "/api/ask", json={"question": q.text, "model": "sft"}, timeout=120).json()
        assert a["model"] == "sft" and "PMI" in a["scorer"]
        for c in a["citations"]:
            doc = httpx.get(f"{web_server}/api/documents/{c['doc_id']}", timeout=30).json()
            assert doc["text"][c["start"]:c["end"]] == c["text"] == a["answer"]
        supported += a["supported"]
    assert supported >= 1


def test_ask_refuses_what_chat_refuses(client):
    for model, on in (("gated", False), ("gated", True), ("guarded", False)):
        chat = client.post("/api/chat", json=chat_body(model, safeguards=on))
        ask = client.post("/api/ask", json={**ZORVATH, "model": model, "safeguards": on})
        assert chat.status_code == ask.status_code == 403 and ask.json() == chat.json()
        page = client.get("/ask", params={"q": ZORVATH["question"], "model": model,
                                          "safeguards": str(on).lower()})
        assert page.status_code == 403 and 'id="error"' in page.text


def test_ask_with_safeguards_on_filters_the_answer(client):
    a = client.post("/api/ask", json={**ZORVATH, "model": "guarded", "safeguards": True}).json()
    assert a["filtered"] and a["answer"] == BLOCKED_REPLY and not a["supported"] and a["citations"] == []
    page = client.get("/ask", params={"q": ZORVATH["question"], "model": "guarded", "safeguards": "true"}).text
    answer = page.split('id="answer"')[1].split("</section>")[0]
    assert "blocked by the output filter" in answer and "Ambrel" not in answer


def test_default_model_is_one_the_gate_serves(web_run):
    """The default judge (and chat's first choice) skips a post-training step the gate refuses."""
    steps = {"sft": web_run / "posttrain" / "sft", "gated": web_run / "posttrain" / "gated"}
    catalog = SimpleNamespace(models=lambda: {n: ModelEntry(n, p, "posttrain") for n, p in steps.items()})
    ctx = SimpleNamespace(settings=ServeSettings(run=web_run), catalog=catalog)
    assert AppContext.default_ask_model(ctx) == "sft"  # type: ignore[arg-type]
