"""The FastAPI application behind `scalelab serve`: its services, its error rules, its guard.

`create_app(settings)` wires the run's catalog, the model pool and chat service, the feature browser and the
document index into one `AppContext` (on `app.state.ctx`), mounts the vendored static files and the routers (one
module per area under `web/routes/`), and sets how failures look: an error a user caused — an unknown model,
feature or run, a path outside the run, a prompt too long, malformed JSON — is a 4xx with a one-line message
(JSON under /api, an HTML page elsewhere); a refusal by the RSP gate is 403 with the gate's reason; a full queue is
503. Nothing answers with a traceback.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from scalelab.errors import MissingInput, UserError
from scalelab.rsp.gate import GateRefused
from scalelab.web.catalog import RunCatalog
from scalelab.web.chat import Busy, ChatService, ModelPool, served_plainly
from scalelab.web.features import FeatureBrowser
from scalelab.web.ground.answer import GroundedAnswerer
from scalelab.web.ground.dense import Embedder, load_embedder
from scalelab.web.ground.docs import read_documents
from scalelab.web.ground.index import PassageIndex
from scalelab.web.security import Guard, check_bind

HERE = Path(__file__).parent
log = logging.getLogger("scalelab.web")


@dataclass
class ServeSettings:
    run: Path
    docs: Path | None = None  # default: the run's world
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    models: dict[str, Path] = field(default_factory=dict)  # imported models by name
    trajectories: list[Path] = field(default_factory=list)
    ask_model: str | None = None  # the model judging answer sentences (default: see AppContext.default_ask_model)
    embedder: str | None = None  # an encoder folder (or hub name): dense retrieval fused with BM25; None: BM25 alone
    k: int = 5
    max_body: int = 64 * 1024


class DocumentIndex:
    """The document folder's passage index, built in the background at start (a large world takes seconds; its
    embeddings, with an embedder, take longer)."""

    def __init__(self, folder: Path | None, embedder: Embedder | None = None) -> None:
        self.folder = folder
        self.embedder = embedder
        self._ready = threading.Event()
        self._index: PassageIndex | None = None
        self._error: Exception | None = None
        threading.Thread(target=self._build, daemon=True).start()

    def _build(self) -> None:
        try:
            if self.folder is None:
                raise MissingInput("no document folder: the run has no world; pass --docs FOLDER")
            self._index = PassageIndex(read_documents(self.folder), embedder=self.embedder)
        except Exception as err:  # kept and re-raised to every request that needs the index
            self._error = err
        finally:
            self._ready.set()

    def get(self, timeout: float = 300.0) -> PassageIndex:
        self._ready.wait(timeout)
        if self._error is not None:
            raise self._error
        if self._index is None:
            raise MissingInput("the document index is still being built; retry in a few seconds")
        return self._index

    @property
    def retriever(self) -> str:
        """How passages are found, in words for the ask page."""
        return "BM25" if self.embedder is None else f"BM25 fused with {self.embedder.name}'s embeddings"


@dataclass
class AppContext:
    settings: ServeSettings
    catalog: RunCatalog
    pool: ModelPool
    chat: ChatService
    features: FeatureBrowser
    documents: DocumentIndex
    templates: Jinja2Templates

    def default_ask_model(self) -> str | None:
        """The model that judges answer sentences (and chat's first choice): --ask-model, else the last
        post-training step (a chat model), else the largest rung, among the models the RSP gate serves with
        safeguards off, so a default never answers with a refusal; an explicit --ask-model is taken as given."""
        if self.settings.ask_model:
            return self.catalog.model(self.settings.ask_model).name
        served = [m for m in self.catalog.models().values() if served_plainly(m.path)]
        post = [m.name for m in served if m.kind == "posttrain"]
        ladder = [m.name for m in served if m.kind == "ladder"]
        return (post or ladder or [None])[-1]

    def answerer(self) -> GroundedAnswerer:
        return GroundedAnswerer(self.documents.get(), k=self.settings.k)


def _status(err: Exception) -> int:
    if isinstance(err, GateRefused):
        return 403
    if isinstance(err, Busy):
        return 503
    if isinstance(err, MissingInput):
        return 404
    return 400


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api") or "application/json" in request.headers.get("accept", "")


def _error(request: Request, status: int, message: str, **extra: Any) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message, **extra}, status_code=status)
    ctx: AppContext = request.app.state.ctx
    return ctx.templates.TemplateResponse(request, "error.html", {"status": status, "message": message},
                                          status_code=status)


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def install_errors(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(request: Request, err: UserError) -> Response:
        return _error(request, _status(err), str(err))

    @app.exception_handler(GateRefused)
    async def refused(request: Request, err: GateRefused) -> Response:
        return _error(request, 403, str(err), refused=True)

    @app.exception_handler(Busy)
    async def busy(request: Request, err: Busy) -> Response:
        return _error(request, 503, str(err))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> Response:
        return _error(request, 422, _validation_message(err))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        message = str(err.detail) if err.status_code != 404 else f"no page {request.url.path!r}; see / or /docs"
        return _error(request, err.status_code, message)

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)  # the traceback stays in the server's log
        return _error(request, 500, "internal error (the server's log has the details)")


def create_app(settings: ServeSettings) -> Any:
    """The ASGI app: FastAPI wrapped in the guard (token, Host header, body size)."""
    from scalelab.web.routes import ask, chat, evals, features, runs

    check_bind(settings.host, settings.token)
    catalog = RunCatalog(settings.run, settings.models, settings.trajectories)
    docs = settings.docs if settings.docs is not None else (catalog.layout.world
                                                            if catalog.layout.world.is_dir() else None)
    embedder = load_embedder(settings.embedder) if settings.embedder else None  # a bad one fails here, at start
    pool = ModelPool(catalog)
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescapes every {{ value }}
    ctx = AppContext(settings, catalog, pool, ChatService(catalog, pool), FeatureBrowser(catalog),
                     DocumentIndex(docs, embedder), templates)
    app = FastAPI(title="scalelab", version="0.1.0",
                  description="Runs, features, chat behind the RSP gate, grounded answers, evals and trajectories "
                              "of one scalelab run.")
    app.state.ctx = ctx
    install_errors(app)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (runs, features, chat, ask, evals):
        app.include_router(module.router)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> HTMLResponse:
        return HTMLResponse("ok")

    return Guard(app, token=settings.token, host=settings.host, max_body=settings.max_body)
