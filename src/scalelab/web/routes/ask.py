"""Grounded answers: ask a question, get the answering sentence with its citation, open the cited passage.

The answer is a sentence of a document (see `ground.answer`): the model only *judges* candidates and never writes
the text shown. It is still the model's capability that picks what is shown, so the RSP gate applies to it as to
chat (`rsp.gate.serving_filter`): a model chat refuses is refused here with the same 403 and reason, and with
safeguards on the output filter judges the chosen answer (a blocked one is replaced by the filter's refusal and
loses its citation). The documents themselves stay readable (`/api/search`, `/documents`), as they are with
`model: "none"`, which answers with the lexical baseline alone and involves no model to gate.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from scalelab.errors import InputError, MissingInput
from scalelab.rsp.gate import serving_filter
from scalelab.web.routes.runs import FILE_HEADERS
from scalelab.web.security import safe_file

router = APIRouter()


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=1000)
    model: str | None = Field(None, max_length=64, description="the judging model (default: the app's; 'none': "
                                                               "lexical only)")
    k: int | None = Field(None, ge=1, le=50, description="passages to retrieve")
    safeguards: bool = Field(False, description="apply the output filter `scalelab rsp safeguards` built (as chat)")


def ask(request: Request, body: AskRequest) -> dict[str, Any]:
    ctx = request.app.state.ctx
    answerer = ctx.answerer()
    if body.k:
        answerer.k = body.k
    name = body.model or ctx.default_ask_model()
    if name in (None, "none"):
        return {**answerer.answer(body.question).to_dict(), "model": None, "safeguards": False, "filtered": False}
    entry = ctx.catalog.model(name)
    output_filter = serving_filter(entry.path, body.safeguards)  # raises GateRefused (403), as chat does
    lm = ctx.pool.get(entry.name)
    with ctx.pool.turn():
        result = {**answerer.answer(body.question, lm).to_dict(), "model": name, "safeguards": body.safeguards,
                  "filtered": False}
        if output_filter is not None and result["supported"]:
            blocked, text = output_filter.check(body.question, result["answer"])
            if blocked:
                result.update(answer=text, supported=False, citations=[], filtered=True,
                              reason="the output filter blocked the answer the model chose")
    return result


@router.get("/ask", response_class=HTMLResponse, include_in_schema=False)
def ask_page(request: Request, q: str = Query("", max_length=1000), model: str | None = None,
             safeguards: bool = False) -> HTMLResponse:
    ctx = request.app.state.ctx
    result = ask(request, AskRequest(question=q, model=model, safeguards=safeguards)) if q.strip() else None
    return ctx.templates.TemplateResponse(request, "ask.html", {
        "q": q, "result": result, "models": list(ctx.catalog.models()), "model": model or ctx.default_ask_model(),
        "safeguards": safeguards, "folder": str(ctx.documents.folder), "retriever": ctx.documents.retriever})


@router.post("/api/ask", tags=["ask"])
def api_ask(request: Request, body: AskRequest) -> dict[str, Any]:
    """Answer from the documents: `answer` (a sentence of a document, or "The documents do not say."),
    `supported`, `filtered` (the output filter blocked it; with `safeguards`), `citations` ([{doc_id, title,
    passage, start, end, passage_start, passage_end, text}]: the character span is the cited sentence's in the
    document), the `retrieved` passages and `seconds`. Refused (403) with the gate's reason for a model chat
    refuses."""
    return ask(request, body)


def _document(request: Request, doc_id: str, start: int | None, end: int | None) -> dict[str, Any]:
    doc = request.app.state.ctx.documents.get().document(doc_id)
    n = len(doc.text)
    if (start is None) != (end is None) or (start is not None and not 0 <= start <= end <= n):  # type: ignore[operator]
        raise InputError(f"start and end must be given together with 0 <= start <= end <= {n} (the document's "
                         "length)")
    return {"id": doc.id, "title": doc.title, "source": doc.source, "text": doc.text, "start": start, "end": end}


@router.get("/documents/{doc_id:path}", response_class=HTMLResponse, include_in_schema=False)
def document_page(request: Request, doc_id: str, start: int | None = None, end: int | None = None) -> HTMLResponse:
    d = _document(request, doc_id, start, end)
    s, e = (d["start"], d["end"]) if d["start"] is not None else (0, 0)
    parts = {"before": d["text"][:s], "cited": d["text"][s:e], "after": d["text"][e:]}
    return request.app.state.ctx.templates.TemplateResponse(request, "document.html", {"d": d, **parts})


@router.get("/api/documents/{doc_id:path}", tags=["ask"])
def api_document(request: Request, doc_id: str, start: int | None = None, end: int | None = None) -> dict[str, Any]:
    """A document's full text (with the span asked for, when given)."""
    return _document(request, doc_id, start, end)


@router.get("/api/search", tags=["ask"])
def api_search(request: Request, q: str = Query(min_length=1, max_length=1000),
               k: int = Query(5, ge=1, le=50)) -> list[dict[str, Any]]:
    """The passages retrieved for a query, best first: BM25's, or BM25's and the dense ranking fused (reciprocal
    rank fusion) when the app runs with --embedder."""
    index = request.app.state.ctx.documents.get()
    return [{"doc_id": index.docs[h.passage.doc].id, "passage": h.passage.index, "start": h.passage.start,
             "end": h.passage.end, "score": round(h.score, 4), "text": index.text(h.passage)}
            for h in index.search(q, k)]


@router.get("/files/docs/{path:path}", tags=["files"])
def docs_file(request: Request, path: str) -> FileResponse:
    """A file from inside the document folder (never outside it)."""
    folder = request.app.state.ctx.documents.folder
    if folder is None:
        raise MissingInput("the app has no document folder")
    return FileResponse(safe_file(folder, path), headers=FILE_HEADERS)
