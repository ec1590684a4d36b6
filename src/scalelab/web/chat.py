"""Chat behind the RSP gate: load a model, check it may be served, steer it, stream its reply.

The gate is the one `scalelab chat` applies (`rsp.gate.serving_filter`): a model whose determination needs
safeguards is refused (`GateRefused`, shown with its reason) unless they are switched on *and* measured, met and
built; with them on, the output filter judges the whole reply before any of it is shown, so a blocked reply never
leaks token by token (a filtered chat streams its reply in one piece, after the check).

Steering clamps SAE features during generation (`interp.steering.steer`, scale × the feature's max activation).
Its hooks sit on the model's modules, so generations run one at a time (`ModelPool.lock`), which is also what two
CPU cores can do; requests beyond `max_waiting` queued ones get a clear 503 instead of an ever-growing queue.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from scalelab.errors import InputError
from scalelab.interp.steering import steer
from scalelab.model.lm import LM, load_lm
from scalelab.rsp.gate import GateError, GateRefused, check_serving, serving_filter
from scalelab.web.catalog import RunCatalog

MAX_CHARS = 4000
MAX_TURNS = 32


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_CHARS)


class Steering(BaseModel):
    sae: str = Field(max_length=64, description="an SAE of the run (its rung, e.g. d3); it must read this model")
    features: dict[int, float] = Field(max_length=16, description="feature id -> scale (x its max activation; "
                                                                  "0 ablates)")


class ChatRequest(BaseModel):
    model: str = Field(max_length=64, description="a model of the run (GET /api/models)")
    messages: list[Message] = Field(min_length=1, max_length=MAX_TURNS)
    system: str | None = Field(None, max_length=MAX_CHARS, description="system prompt")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(64, ge=1, le=512)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    steer: Steering | None = None
    safeguards: bool = Field(False, description="apply the output filter `scalelab rsp safeguards` built")


class Busy(RuntimeError):
    """Too many generations are already waiting."""


class ModelPool:
    """Loaded models by name (the `max_loaded` most recent), and the one lock every generation holds."""

    def __init__(self, catalog: RunCatalog, max_loaded: int = 3, max_waiting: int = 64) -> None:
        self.catalog = catalog
        self.max_loaded = max_loaded
        self.max_waiting = max_waiting
        self.lock = threading.Lock()
        self._loading = threading.Lock()
        self._waiting = 0
        self._count = threading.Lock()
        self._models: OrderedDict[str, LM] = OrderedDict()

    def get(self, name: str) -> LM:
        entry = self.catalog.model(name)
        with self._loading:
            if name not in self._models:
                self._models[name] = load_lm(entry.path, chat=True)
                while len(self._models) > self.max_loaded:
                    self._models.popitem(last=False)
            self._models.move_to_end(name)
            return self._models[name]

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for the generation lock (503 past `max_waiting` waiters)."""
        with self._count:
            if self._waiting >= self.max_waiting:
                raise Busy(f"{self._waiting} requests are already waiting for the model; retry shortly")
            self._waiting += 1
        with self.lock:
            with self._count:
                self._waiting -= 1
            yield


def served_plainly(path: Path) -> bool:
    """Whether the gate serves the model with safeguards off (unreadable determinations count as refused)."""
    try:
        check_serving(path, False)
    except (GateRefused, GateError):
        return False
    return True


def gate_status(catalog: RunCatalog, name: str) -> dict[str, Any]:
    """May the model be served with safeguards off / on, and why not (the gate's own reasons).

    This is `check_serving`, what `scalelab chat` enforces, so it agrees with `rsp.gate.gate` (`scalelab rsp gate`)
    on every assessed model: a crossed threshold is refused with safeguards off; with them on it is served
    exactly when `gate` says ok and an output filter was built (serving needs the filter that `gate` does not
    check). The determination is read under its own policy. A model never assessed (no `rsp_determination.json`)
    is served either way, as `scalelab chat` serves it, with the reason "never assessed: nothing to enforce";
    `scalelab rsp gate` cannot decide for it (a user error, exit 2: run `scalelab rsp assess` first)."""
    path = catalog.model(name).path
    out: dict[str, Any] = {}
    for key, on in (("off", False), ("on", True)):
        try:
            det = check_serving(path, on)
            out[key] = {"served": True, "reason": "never assessed: nothing to enforce" if det is None else
                        "allowed by its RSP determination"}
        except GateRefused as err:
            out[key] = {"served": False, "reason": str(err)}
    return out


@dataclass
class Prepared:
    lm: LM
    prompt: list[int]
    user_text: str
    output_filter: Any
    steering: Steering | None


class ChatService:
    """Everything /api/chat does, independent of HTTP."""

    def __init__(self, catalog: RunCatalog, pool: ModelPool) -> None:
        self.catalog, self.pool = catalog, pool

    def prepare(self, req: ChatRequest) -> Prepared:
        entry = self.catalog.model(req.model)
        output_filter = serving_filter(entry.path, req.safeguards)  # raises GateRefused, as `scalelab chat` does
        if req.steer is not None:
            reads = self.catalog.sae_model(req.steer.sae)
            if reads != req.model:
                raise InputError(f"SAE {req.steer.sae} reads model {reads or 'outside this run'}, not {req.model}; "
                                 f"steer {reads or 'that model'} with it")
            bad = {f: s for f, s in req.steer.features.items() if not -100 <= s <= 100}
            if bad:
                raise InputError(f"steering scales {bad} are outside -100..100")
        lm = self.pool.get(req.model)
        messages = ([{"role": "system", "content": req.system}] if req.system else []) + \
                   [m.model_dump() for m in req.messages]
        prompt = lm.encode(lm.chat_text(messages), bos=True)
        if len(prompt) + req.max_tokens > lm.context_length:
            raise InputError(f"the conversation is {len(prompt)} tokens and max_tokens {req.max_tokens}; together "
                             f"they exceed {req.model}'s context of {lm.context_length} tokens: shorten it")
        user = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
        return Prepared(lm, prompt, user, output_filter, req.steer)

    def _steering(self, p: Prepared) -> contextlib.AbstractContextManager:
        if p.steering is None or not p.steering.features:
            return contextlib.nullcontext()
        return steer(p.lm, self.catalog.sae(p.steering.sae), p.steering.features)

    def _tokens(self, p: Prepared, req: ChatRequest, cancel: threading.Event) -> Iterator[int]:
        with self._steering(p):
            for token in p.lm.stream(p.prompt, req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                                     seed=req.seed):
                if cancel.is_set():
                    return
                yield token

    def reply(self, req: ChatRequest) -> dict[str, Any]:
        """The whole reply at once (what `LM.chat` gives, filtered when safeguards are on)."""
        p = self.prepare(req)
        t0 = time.perf_counter()
        with self.pool.turn():
            ids = list(self._tokens(p, req, threading.Event()))
        return self._final(p, req, ids, t0)

    def _final(self, p: Prepared, req: ChatRequest, ids: list[int], t0: float) -> dict[str, Any]:
        text = p.lm.decode(ids).strip()
        blocked = False
        if p.output_filter is not None:
            blocked, text = p.output_filter.check(p.user_text, text)
        return {"model": req.model, "reply": text, "tokens": len(ids), "filtered": blocked,
                "safeguards": req.safeguards, "steered": dict(req.steer.features) if req.steer else {},
                "seconds": round(time.perf_counter() - t0, 3)}

    def open_stream(self, req: ChatRequest) -> Iterator[tuple[str, Any]]:
        """Check the request now (gate, steering, sizes: errors before the stream opens get their own status),
        then the stream: ("token", text) as tokens are sampled, then ("done", the reply record), or ("error",
        message). With an output filter the reply is judged first and sent as one token event."""
        return self._events(self.prepare(req), req)

    def _events(self, p: Prepared, req: ChatRequest) -> Iterator[tuple[str, Any]]:
        out: queue.Queue = queue.Queue()
        cancel = threading.Event()

        def produce() -> None:
            t0 = time.perf_counter()
            try:
                with self.pool.turn():
                    ids: list[int] = []
                    shown = ""
                    for token in self._tokens(p, req, cancel):
                        ids.append(token)
                        if p.output_filter is None:
                            text = p.lm.decode(ids).lstrip()
                            if not text.endswith("\ufffd") and len(text) > len(shown):  # whole characters only
                                out.put(("token", text[len(shown):]))
                                shown = text
                final = self._final(p, req, ids, t0)
                if p.output_filter is not None:
                    out.put(("token", final["reply"]))
                elif len(rest := p.lm.decode(ids).lstrip()) > len(shown):  # characters held back at the end
                    out.put(("token", rest[len(shown):]))
                out.put(("done", final))
            except Busy as err:
                out.put(("error", str(err)))
            except Exception as err:  # reported to the client as an event; the stream has already begun
                out.put(("error", f"{type(err).__name__}: {err}"))
            finally:
                out.put(None)

        threading.Thread(target=produce, daemon=True).start()
        try:
            while (item := out.get()) is not None:
                yield item
        finally:
            cancel.set()  # the client went away: stop sampling for it
