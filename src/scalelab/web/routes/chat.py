"""Chat: the page (settings, steering sliders, A/B of two settings) and the API, plain or streamed over SSE.

`POST /api/chat/stream` answers `text/event-stream`: `event: token` carries each new piece of text as it is
sampled, `event: done` the whole reply record, `event: error` a failure after the stream began. A request the gate
refuses, or that is malformed, fails before the stream opens, with its own status (403, 4xx).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from scalelab.web.chat import ChatRequest, gate_status

router = APIRouter()


def models_data(request: Request) -> list[dict[str, Any]]:
    ctx = request.app.state.ctx
    saes = {name: ctx.catalog.sae_model(name) for name in ctx.catalog.saes()}
    return [{"name": m.name, "kind": m.kind, "path": str(m.path), "gate": gate_status(ctx.catalog, m.name),
             "saes": [s for s, model in saes.items() if model == m.name]}
            for m in ctx.catalog.models().values()]


@router.get("/chat", response_class=HTMLResponse, include_in_schema=False)
def chat_page(request: Request, model: str | None = None, sae: str | None = None,
              feature: int | None = None) -> HTMLResponse:
    ctx = request.app.state.ctx
    models = models_data(request)
    names = [m["name"] for m in models]
    chosen = model if model in names else (ctx.default_ask_model() if ctx.default_ask_model() in names else
                                           (names[0] if names else None))
    preset = {"sae": sae, "feature": feature} if sae and feature is not None else None
    return ctx.templates.TemplateResponse(request, "chat.html", {
        "models": models, "model": chosen, "preset": preset})


@router.get("/api/models", tags=["chat"])
def api_models(request: Request) -> list[dict[str, Any]]:
    """Every model of the run (and imported ones) with the RSP gate's answer for safeguards off and on, and the
    SAEs that can steer it."""
    return models_data(request)


@router.post("/api/chat", tags=["chat"])
def api_chat(request: Request, body: ChatRequest) -> dict[str, Any]:
    """The model's reply to the conversation (temperature 0 is greedy; `seed` fixes a sample). Refused (403) with
    the gate's reason when the model's RSP determination needs safeguards that are off or not met."""
    return request.app.state.ctx.chat.reply(body)


def _sse(events: Iterator[tuple[str, Any]]) -> Iterator[str]:
    for kind, data in events:
        yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"


@router.post("/api/chat/stream", tags=["chat"], response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}, "description": "token, done and error events"}})
def api_chat_stream(request: Request, body: ChatRequest) -> StreamingResponse:
    """The reply streamed as server-sent events while it is sampled (see the module docstring)."""
    events = request.app.state.ctx.chat.open_stream(body)
    return StreamingResponse(_sse(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
