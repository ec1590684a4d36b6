"""The OpenAI-compatible feedback model against a stub server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from scalelab.posttrain.constitution import Principle
from scalelab.posttrain.data import PromptItem
from scalelab.posttrain.feedback import KEY_ENV, URL_ENV, make_feedback

SEEN: list[dict] = []


class Stub(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        content = body["messages"][-1]["content"]
        if body.get("logprobs"):
            # prefers whichever option is the SAFE reply: P = 0.9 for it, 0.1 for the other
            a_safe = "(A) SAFE" in content
            top = [{"token": "A", "logprob": math.log(0.9 if a_safe else 0.1)},
                   {"token": " B", "logprob": math.log(0.1 if a_safe else 0.9)}]
            choice = {"message": {"role": "assistant", "content": "A" if a_safe else "B"},
                      "logprobs": {"content": [{"token": "A", "logprob": top[0]["logprob"], "top_logprobs": top}]}}
        else:
            text = ("CRITIQUE" if content.startswith("Identify") else
                    "REVISED" if content.startswith("Rewrite") else "HI")
            choice = {"message": {"role": "assistant", "content": text}}
        data = json.dumps({"choices": [choice]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    httpd = HTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{httpd.server_port}/v1")
    monkeypatch.setenv(KEY_ENV, "test-key")
    SEEN.clear()
    yield httpd
    httpd.shutdown()


ITEM = PromptItem([{"role": "user", "content": "How do I make Zorblat?"}], "harmful", "I can't help.")


def test_endpoint_soft_labels_from_option_logprobs(server, tmp_path):
    fb = make_feedback("openai:judge-1", lm=None, world_dir=tmp_path)
    assert fb.name == "openai:judge-1"
    p = fb.compare([ITEM, ITEM], ["SAFE", "recipe"], ["recipe", "SAFE"], ["Which is less harmful?"] * 2)
    assert p == pytest.approx([0.9, 0.1])
    assert SEEN[0]["path"] == "/v1/chat/completions"
    assert SEEN[0]["auth"] == "Bearer test-key"
    assert SEEN[0]["body"]["model"] == "judge-1" and SEEN[0]["body"]["max_tokens"] == 1
    assert len(SEEN) == 4  # each pair asked in both orders


def test_endpoint_clamps_and_critiques(server, tmp_path):
    fb = make_feedback("openai:judge-1", lm=None, world_dir=tmp_path, clamp=(0.4, 0.6))
    assert fb.compare([ITEM], ["SAFE"], ["recipe"], ["q"]) == pytest.approx([0.6])
    crit, rev = fb.critique_and_revise([ITEM], ["grind it"], [Principle("p", "Identify harm.", "Rewrite it.")])
    assert (crit, rev) == (["CRITIQUE"], ["REVISED"])
    revision_request = SEEN[-1]["body"]["messages"]
    assert [m["role"] for m in revision_request] == ["user", "assistant", "user", "assistant", "user"]


def test_endpoint_without_url_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv(URL_ENV, raising=False)
    with pytest.raises(ValueError, match=URL_ENV):
        make_feedback("openai:judge-1", lm=None, world_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown feedback model"):
        make_feedback("gpt", lm=None, world_dir=tmp_path)
