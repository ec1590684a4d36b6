"""Runs, artifacts and their lineage (from the registry), the run's report and zoomable plots, and its files.

An artifact's page answers "where did this come from and what did it feed": its parents (what produced it was
made from), its children (what was made from it), the run that recorded it with that run's config and timing,
and the full lineage back to the data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from scalelab.errors import MissingInput
from scalelab.registry import Registry
from scalelab.web.plots import all_charts
from scalelab.web.security import safe_file

router = APIRouter()
# Files from the run are shown as data, never as part of the app: a page among them runs in a sandbox.
FILE_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}


def _registry(request: Request) -> Registry | None:
    path = request.app.state.ctx.catalog.layout.registry
    return Registry(path) if path.is_file() else None


def _rel(request: Request, path: str) -> str:
    root = request.app.state.ctx.catalog.root.resolve()
    p = Path(path)
    return p.relative_to(root).as_posix() if p.is_relative_to(root) else path


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "–"


def runs_data(request: Request) -> list[dict[str, Any]]:
    reg = _registry(request)
    if reg is None:
        return []
    arts = reg.artifacts()
    out = []
    for r in reg.runs(1000):
        produced = [a for a in arts if a["run_id"] == r.id]
        out.append({"id": r.id, "stage": r.stage, "status": r.status, "started": r.started, "ended": r.ended,
                    "started_at": _when(r.started), "seconds": round(r.ended - r.started, 2) if r.ended else None,
                    "host": r.host, "error": r.error, "config": r.config,
                    "artifacts": [{"id": a["id"], "kind": a["kind"], "path": _rel(request, a["path"])}
                                  for a in produced]})
    return out


def artifact_data(request: Request, artifact_id: int) -> dict[str, Any]:
    reg = _registry(request)
    arts = reg.artifacts() if reg else []
    by_id = {a["id"]: a for a in arts}
    if artifact_id not in by_id:
        raise MissingInput(f"no artifact {artifact_id} in the registry; see /api/artifacts")
    latest = {a["path"]: a for a in arts}  # the newest record of each path
    a = by_id[artifact_id]

    def brief(x: dict[str, Any]) -> dict[str, Any]:
        return {"id": x["id"], "kind": x["kind"], "path": _rel(request, x["path"])}

    parents = [brief(latest[p]) if p in latest else {"id": None, "kind": "input", "path": _rel(request, p)}
               for p in a["parents"]]
    children = [brief(x) for x in latest.values() if a["path"] in x["parents"]]
    lineage = [brief(x) for x in reg.lineage(Path(a["path"]))[1:]] if reg else []
    run = next((r for r in runs_data(request) if r["id"] == a["run_id"]), None)
    meta_path = Path(a["path"]) / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else None
    return {**brief(a), "sha256": a["sha256"], "config_hash": a["config_hash"], "created_at": _when(a["created"]),
            "parents": parents, "children": children, "lineage": lineage, "meta": meta,
            "run": None if run is None else {k: run[k] for k in ("id", "stage", "status", "started_at", "seconds",
                                                                  "config")}}


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/runs")


@router.get("/runs", response_class=HTMLResponse, include_in_schema=False)
def runs_page(request: Request) -> HTMLResponse:
    ctx = request.app.state.ctx
    return ctx.templates.TemplateResponse(request, "runs.html", {
        "runs": runs_data(request), "root": str(ctx.catalog.root), "models": ctx.catalog.models(),
        "has_report": (ctx.catalog.root / "report.html").is_file()})


@router.get("/artifacts/{artifact_id}", response_class=HTMLResponse, include_in_schema=False)
def artifact_page(request: Request, artifact_id: int) -> HTMLResponse:
    return request.app.state.ctx.templates.TemplateResponse(request, "artifact.html",
                                                            {"a": artifact_data(request, artifact_id)})


@router.get("/report", response_class=HTMLResponse, include_in_schema=False)
def report_page(request: Request) -> HTMLResponse:
    ctx = request.app.state.ctx
    return ctx.templates.TemplateResponse(request, "report.html", {
        "charts": all_charts(ctx.catalog), "has_report": (ctx.catalog.root / "report.html").is_file()})


@router.get("/api/runs", tags=["runs"])
def api_runs(request: Request) -> list[dict[str, Any]]:
    """Every run (stage) in the registry: status, timing, config and the artifacts it produced."""
    return runs_data(request)


@router.get("/api/runs/{run_id}", tags=["runs"])
def api_run(request: Request, run_id: str) -> dict[str, Any]:
    """One registry run by id."""
    found = next((r for r in runs_data(request) if r["id"] == run_id), None)
    if found is None:
        raise MissingInput(f"no run {run_id!r} in the registry; see /api/runs")
    return found


@router.get("/api/artifacts", tags=["runs"])
def api_artifacts(request: Request) -> list[dict[str, Any]]:
    """Every artifact record (kind, path relative to the run, parents)."""
    reg = _registry(request)
    return [{**a, "path": _rel(request, a["path"]), "parents": [_rel(request, p) for p in a["parents"]]}
            for a in (reg.artifacts() if reg else [])]


@router.get("/api/artifacts/{artifact_id}", tags=["runs"])
def api_artifact(request: Request, artifact_id: int) -> dict[str, Any]:
    """An artifact with what it was made from, what was made from it, its lineage and its run."""
    return artifact_data(request, artifact_id)


@router.get("/api/plots", tags=["runs"])
def api_plots(request: Request) -> list[dict[str, Any]]:
    """The zoomable charts' data: ladder loss curves, sweep curves, IsoFLOP profiles, the fitted law."""
    return all_charts(request.app.state.ctx.catalog)


@router.get("/api/summary", tags=["runs"])
def api_summary(request: Request) -> dict[str, Any]:
    """The run's summary.json."""
    return request.app.state.ctx.catalog.summary()


@router.get("/files/run/{path:path}", tags=["files"])
def run_file(request: Request, path: str) -> FileResponse:
    """A file from inside the run folder (never outside it: no '..', absolute paths or escaping links)."""
    return FileResponse(safe_file(request.app.state.ctx.catalog.root, path), headers=FILE_HEADERS)
