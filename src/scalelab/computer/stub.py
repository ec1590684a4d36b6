"""A stand-in for a model server, on loopback: it answers the Messages and chat-completions APIs with
scripted tool calls, and checks each request it gets against what the API loop must send.

`StubServer(script)` serves `POST /v1/messages` (Anthropic) and `POST /v1/chat/completions` (OpenAI-style);
`script(request)` returns the next call: a `computer` tool input (a dict with `action`), any other tool as
`{"tool": name, "input": {...}}`, a string (a plain text answer) or None ("Done."); text ends the turn.
Every request is checked — the computer tool is declared with the right type and display size, each tool
result answers the previous tool call, no more screenshots than allowed are in the conversation — and each
violation is kept in `problems`, so a test can assert the loop spoke the protocol, not just that it ran.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scalelab.computer.schema import TOOL_NAME, TOOL_TYPE

Script = Callable[[dict[str, Any]], dict[str, Any] | str | None]


def _call(reply: dict[str, Any] | str | None) -> tuple[str | None, dict[str, Any] | None, str]:
    """(tool name, tool input, text) for one scripted reply."""
    if reply is None or isinstance(reply, str):
        return None, None, reply or "Done."
    if "tool" in reply:
        return reply["tool"], reply["input"], "Calling a tool."
    return TOOL_NAME, reply, "Acting."


def count_images(messages: list[dict[str, Any]]) -> int:
    n = 0
    for m in messages:
        content = m.get("content")
        for b in content if isinstance(content, list) else []:
            n += b.get("type") in ("image", "image_url")
            inner = b.get("content")
            n += sum(c.get("type") == "image" for c in inner) if isinstance(inner, list) else 0
    return n


class StubServer:
    def __init__(self, script: Script, max_images: int = 3, computer_tool: bool = True):
        self.script, self.max_images, self.computer_tool = script, max_images, computer_tool
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self._n = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                if self.path.endswith("/v1/messages"):
                    reply = server._anthropic(body)
                elif self.path.endswith("/chat/completions"):
                    reply = server._openai(body)
                else:
                    self.send_error(404)
                    return
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _next_id(self) -> str:
        self._n += 1
        return f"toolu_{self._n:06d}"

    def _anthropic(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        tools = body.get("tools", [])
        if self.computer_tool and not any(t.get("type") == TOOL_TYPE and t.get("name") == TOOL_NAME and
                                          t.get("display_width_px") for t in tools):
            self.problems.append(f"no {TOOL_TYPE} tool declared: {tools}")
        msgs = body.get("messages", [])
        if count_images(msgs) > self.max_images:
            self.problems.append(f"{count_images(msgs)} screenshots in the conversation (max {self.max_images})")
        if len(msgs) >= 2 and msgs[-2]["role"] == "assistant":
            last_use = [b["id"] for b in msgs[-2]["content"] if b.get("type") == "tool_use"]
            results = [b.get("tool_use_id") for b in msgs[-1]["content"] if b.get("type") == "tool_result"]
            if last_use and results != last_use:
                self.problems.append(f"tool results {results} do not answer tool calls {last_use}")
        name, args, text = _call(self.script(body))
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if name is not None:
            content.append({"type": "tool_use", "id": self._next_id(), "name": name, "input": args})
        return {"id": f"msg_{self._n}", "type": "message", "role": "assistant", "model": body.get("model", "stub"),
                "content": content, "stop_reason": "tool_use" if name else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1}}

    def _openai(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        if self.computer_tool and not any(t.get("function", {}).get("name") == TOOL_NAME
                                          for t in body.get("tools", [])):
            self.problems.append("no computer function declared")
        if count_images(body.get("messages", [])) > self.max_images:
            self.problems.append("too many screenshots in the conversation")
        name, args, text = _call(self.script(body))
        msg: dict[str, Any] = {"role": "assistant", "content": None if name else text}
        if name is not None:
            msg["tool_calls"] = [{"id": self._next_id(), "type": "function",
                                  "function": {"name": name, "arguments": json.dumps(args)}}]
        return {"id": f"chatcmpl-{self._n}", "object": "chat.completion", "created": 0,
                "model": body.get("model", "stub"),
                "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if name else "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
