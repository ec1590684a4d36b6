"""Feature pages, Neuronpedia-like: search an SAE's features by concept or token, and one feature's page (its
top-activating contexts with per-token highlighting, quantile samples, activation histogram, promoted and
suppressed tokens, best world concept, and a button that opens the chat steered by it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from scalelab.web.catalog import check_name

router = APIRouter()


def _histogram_bars(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Histogram bins as bars with their activation range (log10 edges; first and last bins are open)."""
    edges, counts = rec["hist_edges_log10"], rec["hist"]
    top = max(counts) or 1
    bars = []
    for i, c in enumerate(counts):
        lo = f"1e{edges[i - 1]:g}" if i > 0 else "0"
        hi = f"1e{edges[i]:g}" if i < len(edges) else "∞"
        bars.append({"count": c, "height": c / top, "range": f"{lo}–{hi}"})
    return bars


def _contexts(rec: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"top": [], "quantile": []}
    for ex in rec["examples"]:
        peak = max(ex["acts"]) if ex["acts"] else 0.0
        toks = [{"text": t, "act": a, "alpha": round(max(0.0, a) / peak, 3) if peak > 0 else 0.0}
                for t, a in zip(ex["tokens"], ex["acts"], strict=True)]
        out.setdefault(ex["kind"], []).append({"rank": ex["rank"], "max_act": ex["max_act"], "tokens": toks})
    return out


@router.get("/features", response_class=HTMLResponse, include_in_schema=False)
def features_page(request: Request, sae: str | None = None, q: str = Query("", max_length=200)) -> HTMLResponse:
    ctx = request.app.state.ctx
    saes = list(ctx.catalog.saes())
    chosen = check_name(sae, "SAE") if sae else (saes[-1] if saes else None)
    results = ctx.features.search(chosen, q) if chosen else []
    info = ctx.features.info(chosen) if chosen else None
    return ctx.templates.TemplateResponse(request, "features.html", {
        "saes": saes, "sae": chosen, "q": q, "results": results, "info": info})


@router.get("/features/{sae}/{feature}", response_class=HTMLResponse, include_in_schema=False)
def feature_page(request: Request, sae: str, feature: int) -> HTMLResponse:
    ctx = request.app.state.ctx
    rec = ctx.features.feature(check_name(sae, "SAE"), feature)
    return ctx.templates.TemplateResponse(request, "feature.html", {
        "f": rec, "bars": _histogram_bars(rec), "contexts": _contexts(rec)})


@router.get("/api/saes", tags=["features"])
def api_saes(request: Request) -> list[dict[str, Any]]:
    """The run's SAEs with a feature store: site, size, and the model each one steers."""
    ctx = request.app.state.ctx
    return [ctx.features.info(name) for name in ctx.catalog.saes()]


@router.get("/api/features/{sae}", tags=["features"])
def api_search(request: Request, sae: str, q: str = Query("", max_length=200),
               limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
    """Search features by concept (`q=relation:home_town`, `q=creature`) or token (`q=Thalo`); empty q lists the
    most precise ones."""
    ctx = request.app.state.ctx
    name = check_name(sae, "SAE")
    return {"sae": name, "q": q, "results": ctx.features.search(name, q, limit)}


@router.get("/api/features/{sae}/{feature}", tags=["features"])
def api_feature(request: Request, sae: str, feature: int) -> dict[str, Any]:
    """One feature: density, activations, histogram, contexts with per-token activations, logit effects and its
    best world concept (precision, recall)."""
    return request.app.state.ctx.features.feature(check_name(sae, "SAE"), feature)
