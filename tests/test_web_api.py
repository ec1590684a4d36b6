"""The web app's JSON API and its rules: the gate decides as `scalelab chat` does, chat and streaming give what
`LM.chat` gives, steering changes the output, no path leaves the run, every text is escaped, and bad requests are
clear 4xx answers (never a 500)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient

from scalelab.errors import InputError
from scalelab.model.lm import load_lm
from scalelab.rsp.gate import GateRefused, check_serving
from scalelab.web.app import ServeSettings, create_app
from scalelab.web.cli import parse_models
from scalelab.web.security import check_bind, safe_file
from web_fixtures import chat_body


def test_runs_artifacts_and_lineage(client):
    runs = client.get("/api/runs").json()
    assert {r["stage"] for r in runs} == {"world", "tokenizer", "pretrain:d1", "interp"}
    arts = {a["kind"]: a for a in client.get("/api/artifacts").json()}
    tok = client.get(f"/api/artifacts/{arts['tokenizer']['id']}").json()
    assert [p["path"] for p in tok["parents"]] == ["world"]
    assert {c["kind"] for c in tok["children"]} == {"model"}
    model = client.get(f"/api/artifacts/{arts['model']['id']}").json()
    assert {x["kind"] for x in model["lineage"]} == {"tokenizer", "world"} and model["run"]["stage"] == "pretrain:d1"


def test_models_carry_the_gates_answer(client, web_run):
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert set(models) == {"d1", "sft", "gated", "guarded"} and models["d1"]["saes"] == ["d1"]
    assert models["d1"]["gate"]["off"]["served"] and not models["gated"]["gate"]["off"]["served"]


def test_gated_model_is_refused_with_the_gates_reason(client, web_run):
    gated = web_run / "posttrain" / "gated"
    for on in (False, True):
        with pytest.raises(GateRefused) as ref:
            check_serving(gated, on)
        r = client.post("/api/chat", json=chat_body("gated", safeguards=on))
        assert r.status_code == 403 and r.json() == {"error": str(ref.value), "refused": True}
        assert client.post("/api/chat/stream", json=chat_body("gated", safeguards=on)).status_code == 403


def test_chat_and_stream_give_what_lm_chat_gives(client, web_run):
    lm = load_lm(web_run / "models" / "d1" / "final", chat=True)
    for kw in ({"temperature": 0.0}, {"temperature": 0.9, "top_p": 0.9, "seed": 7}):
        body = chat_body(system="Be brief.", **kw)
        expected = lm.chat([[{"role": "system", "content": "Be brief."}, *body["messages"]]], 12, temperature=kw[
            "temperature"], top_p=kw.get("top_p", 1.0), seed=kw.get("seed", 0))[0]
        assert client.post("/api/chat", json=body).json()["reply"] == expected
        with client.stream("POST", "/api/chat/stream", json=body) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        pieces, done = events[:-1], events[-1]
        assert done["reply"] == expected and "".join(pieces).strip() == expected and len(pieces) >= 2


def test_steering_changes_greedy_output_and_checks_its_sae(client):
    feature = client.get("/api/features/d1", params={"q": ""}).json()["results"][0]["feature"]
    plain = client.post("/api/chat", json=chat_body(max_tokens=16)).json()["reply"]
    steered = client.post("/api/chat", json=chat_body(max_tokens=16, steer={"sae": "d1", "features": {
        str(feature): 20.0}})).json()
    assert steered["steered"] == {str(feature): 20.0} and steered["reply"] != plain
    wrong = client.post("/api/chat", json=chat_body("sft", steer={"sae": "d1", "features": {"0": 5}}))
    assert wrong.status_code == 400 and "reads model d1" in wrong.json()["error"]
    assert client.post("/api/chat", json=chat_body(steer={"sae": "d1", "features": {"9999": 5}})).status_code == 400


def test_features_api(client):
    found = client.get("/api/features/d1", params={"q": ""}).json()["results"]
    rec = client.get(f"/api/features/d1/{found[0]['feature']}").json()
    assert rec["examples"] and rec["concept"]["concept"] == found[0]["concept"]
    assert 0 <= rec["concept"]["precision"] <= 1 and rec["steers_model"] == "d1"
    token = rec["promoted"][0][0]
    hits = client.get("/api/features/d1", params={"q": token.strip() or token}).json()["results"]
    assert any(h["feature"] == rec["id"] for h in hits) or not token.strip()


def test_ask_cites_a_span_of_its_document_and_says_when_it_cannot(client):
    a = client.post("/api/ask", json={"question": "Where does Zorvath the otter live?", "model": "none"}).json()
    assert a["supported"] and "Ambrel" in a["answer"]
    c = a["citations"][0]
    doc = client.get(f"/api/documents/{c['doc_id']}").json()
    assert doc["text"][c["start"]:c["end"]] == a["answer"] == c["text"]
    no = client.post("/api/ask", json={"question": "Where does Quillibrand live?"}).json()
    assert not no["supported"] and no["answer"] == "The documents do not say." and no["citations"] == []


def test_html_is_escaped_everywhere(client):
    for url in ("/documents/evil.md", "/ask?q=Where+does+Zorvath+the+otter+live%3F&model=none"):
        body = client.get(url).text
        assert "<script>alert" not in body and "Zorvath" in body, url
    api = client.get("/api/search?q=otter")  # JSON carries the text as data, never as a page to render
    assert api.headers["content-type"] == "application/json" and "<script>" in api.json()[0]["text"]
    assert "&lt;script&gt;alert" in client.get("/documents/evil.md").text
    page = client.get("/features/d1/0").text
    assert "<script>" not in page.split("<main>")[1].split("</main>")[0]


def test_trajectories_api(client):
    sets = client.get("/api/trajectories").json()
    name, s = next(iter(sets.items()))
    ep = client.get(f"/api/trajectories/{name}/{s['episodes'][0]['name']}").json()
    assert ep["steps"] and ep["steps"][0]["action"]["action"]
    shot = client.get(f"/files/trajectories/{name}/trajectories/{ep['steps'][0]['screenshot']}")
    assert shot.status_code == 200 and shot.content.startswith(b"\x89PNG")
    assert client.get(f"/trajectories/{name}/nope").status_code == 404


@pytest.mark.parametrize("path", ["%2e%2e/%2e%2e/etc/passwd", "..%2f..%2fetc%2fpasswd", "%2fetc%2fpasswd",
                                  "/etc/passwd", "world%5c..%5c..%5cx", "a%00b", "link/passwd", "link"])
def test_no_path_leaves_the_run(client, web_run, path):
    link = web_run / "link"
    if not link.exists():
        link.symlink_to("/etc")
    r = client.get(f"/files/run/{path}")
    assert r.status_code in (400, 404) and "root:" not in r.text
    assert client.get(f"/files/docs/{path}").status_code in (400, 404)


def test_safe_file_rules(web_run):
    assert safe_file(web_run, "world/world.json").name == "world.json"
    for bad in ("../x", "/etc/passwd", "a/../../b", "a\\b", "a\x00b"):
        with pytest.raises(InputError):
            safe_file(web_run, bad)


def test_raw_dot_dot_on_the_live_server(web_server):
    """An HTTP client that does not normalise the path sends `..` as is; the server still refuses it."""
    url = urlparse(web_server)
    for path in ("/files/run/../../../../etc/passwd", "/files/run/world/../../../etc/passwd"):
        con = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        con.request("GET", path)
        r = con.getresponse()
        assert r.status in (400, 404) and b"root:" not in r.read()
        con.close()


@pytest.mark.parametrize(("method", "url", "body", "status"), [
    ("post", "/api/chat", chat_body("nope"), 404),
    ("post", "/api/chat", {**chat_body(), "messages": [{"role": "user", "content": "x" * 5000}]}, 422),
    ("post", "/api/chat", {**chat_body(), "temperature": -1}, 422),
    ("post", "/api/chat", {**chat_body(), "max_tokens": 500}, 400),  # over the model's context with the prompt
    ("post", "/api/ask", {"question": ""}, 422),
    ("post", "/api/ask", {"question": "Where?", "model": "nope"}, 404),
    ("get", "/api/features/nope/1", None, 404),
    ("get", "/api/features/d1/99999", None, 400),
    ("get", "/api/features/d1/abc", None, 422),
    ("get", "/api/runs/nope", None, 404),
    ("get", "/api/artifacts/99999", None, 404),
    ("get", "/api/evals/nope", None, 404),
    ("get", "/api/documents/nope.md", None, 400),
    ("get", "/api/documents/ok.txt?start=5&end=2", None, 400),
    ("get", "/features/..%2f..%2fetc/1", None, 404),  # a decoded "/" matches no page
    ("get", "/features/..%2e/1", None, 400),
    ("get", "/nope", None, 404),
])
def test_bad_requests_get_a_clear_4xx(client, method, url, body, status):
    r = client.post(url, json=body) if method == "post" else client.get(url)
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text
    if url.startswith("/api"):
        assert r.json()["error"]
    else:  # pages answer with an HTML page naming the problem
        assert 'id="error"' in r.text and r.headers["content-type"].startswith("text/html")


def test_malformed_and_oversized_bodies(client):
    r = client.post("/api/chat", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]
    r = client.post("/api/ask", content=b"x" * 70_000, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_binding_and_token(web_run, monkeypatch):
    with pytest.raises(InputError, match="SCALELAB_SERVE_TOKEN"):
        check_bind("0.0.0.0", None)
    check_bind("127.0.0.1", None)
    app = create_app(ServeSettings(run=web_run, host="0.0.0.0", token="s3cret"))
    c = TestClient(app, base_url="http://10.0.0.5")
    assert c.get("/api/runs").status_code == 401
    assert c.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    first = c.get("/runs?token=s3cret")
    assert first.status_code == 200 and "scalelab_token=s3cret" in first.headers["set-cookie"]
    assert c.get("/api/models").status_code == 200  # the cookie carries the token from now on
    local = TestClient(create_app(ServeSettings(run=web_run)), base_url="http://evil.example")
    assert local.get("/api/runs").status_code == 403  # DNS rebinding: another Host on a loopback app
    assert os.environ.get("SCALELAB_SERVE_TOKEN") in (None, "")


def test_openapi_documents_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/runs", "/api/features/{sae}/{feature}", "/api/chat", "/api/chat/stream", "/api/ask",
              "/api/models", "/api/trajectories", "/api/evals/{name}"):
        assert p in paths
    assert client.get("/docs").status_code == 200


def test_scaling_plots_draw_the_fit_with_its_hold_outs(client, web_run):
    """fit.json's sweep: the IsoFLOP profiles and the law, each with its hold-out budget, beside the ladder."""
    fit = json.loads((web_run / "scaling" / "fit.json").read_text())
    charts = {c["id"]: c for c in client.get("/api/plots").json()}
    assert set(charts) == {"ladder", "sweep", "isoflop", "law"}
    held = sorted(r["final_val_loss"] for r in fit["runs"] if r["holdout"])
    iso = {s["label"]: s for s in charts["isoflop"]["series"]}
    assert len(iso) == 4 and sorted(p[1] for p in iso["hold-out C=4.00e+14"]["points"]) == pytest.approx(held)
    law = {s["label"]: s for s in charts["law"]["series"]}
    assert sorted(p[1] for p in law["hold-out C=4.00e+14 measured"]["points"]) == pytest.approx(held)
    assert law["hold-out C=4.00e+14 law"]["dash"] and f"E={fit['chinchilla']['E']:.3f}" in charts["law"]["title"]
    assert sum(s["dash"] for s in charts["sweep"]["series"]) == 4  # the hold-out budget's four runs


def test_evals_show_report_verdict_and_inspect_log(client, web_run):
    assert set(client.get("/api/evals").json()) == {"gated", "guarded"}
    d = client.get("/api/evals/gated").json()
    assert d["report"]["crossed"] == ["CBRN-3"] and d["determination"]["asl"] == 3
    assert not d["gate"]["off"]["served"] and not d["gate"]["on"]["served"]
    [log] = d["logs"]
    on_disk = [p.name for p in (web_run / "rsp" / "gated" / "logs").glob("*.eval")]
    assert [log["file"]] == on_disk and log["status"] == "success" and log["samples"] == 3
    assert log["task"] == "hazard_mc" and 0.0 <= log["metrics"]["world_answer/mean"] <= 1.0  # the log's header
    page = client.get("/evals/gated").text
    assert log["file"] in page and "inspect view --log-dir" in page and "REFUSED" in page
    assert "CBRN-3" in page.split('class="report"')[1]  # the capability report, rendered
    assert "Safeguards on: served" in client.get("/evals/guarded").text


def test_an_imported_model_is_served(web_run, tmp_path):
    """`--model NAME=DIR`: a model folder from outside the run is listed and chats (a copy of d1: same replies)."""
    shutil.copytree(web_run / "models" / "d1" / "final", tmp_path / "mine")
    models = parse_models([f"mine={tmp_path / 'mine'}"])
    assert models == {"mine": tmp_path / "mine"}
    c = TestClient(create_app(ServeSettings(run=web_run, models=models)), base_url="http://127.0.0.1")
    listed = {m["name"]: m for m in c.get("/api/models").json()}
    assert listed["mine"]["kind"] == "imported" and listed["mine"]["gate"]["off"]["served"]
    mine = c.post("/api/chat", json=chat_body("mine")).json()
    assert mine["model"] == "mine" and mine["reply"] == c.post("/api/chat", json=chat_body("d1")).json()["reply"]
    with pytest.raises(InputError, match="NAME=FOLDER"):
        parse_models(["mine"])


def test_feature_contexts_with_markup_are_escaped(client):
    """The feature store holds contexts with a `<script>` in them: the API returns the text, the page escapes it."""
    for feature in range(64):
        rec = client.get(f"/api/features/d1/{feature}").json()
        if any("<script" in "".join(t for t in ex["tokens"]) for ex in rec["examples"]):
            break
    else:
        pytest.fail("no feature context holds the <script> text")
    main = client.get(f"/features/d1/{feature}").text.split("<main>")[1].split("</main>")[0]
    assert "<script" not in main and "&lt;" in main


def test_run_prints_the_serve_command(tmp_path, monkeypatch):
    """`scalelab run` ends with the command that browses its run (the pipeline itself stubbed)."""
    from typer.testing import CliRunner

    import scalelab.pipeline
    from scalelab.cli import app

    monkeypatch.setattr(scalelab.pipeline, "run_all", lambda cfg, out: {"wall_seconds": 1.0})
    res = CliRunner().invoke(app, ["run", "--preset", "smoke", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert f"browse it: scalelab serve --out {tmp_path / 'r'}" in res.output
