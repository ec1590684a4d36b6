"""RSP capability reports with their Inspect logs, and computer-use trajectories step by step.

A capability report is the Markdown `scalelab rsp assess` wrote, rendered by the report's own renderer (which
escapes all text); beside it the model's determination sidecar, the gate's verdict and a table of its Inspect logs
(task, status, samples, headline metrics, read from each log's header) with the `inspect view` command that opens
them in Inspect's own viewer. A trajectory page shows every step's screenshot with its action drawn on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from scalelab.errors import MissingInput
from scalelab.report.render import markdown_to_html
from scalelab.rsp.gate import read_determination
from scalelab.web import trajectories as tj
from scalelab.web.catalog import check_name
from scalelab.web.chat import gate_status
from scalelab.web.routes.runs import FILE_HEADERS
from scalelab.web.security import safe_file

router = APIRouter()


def _logs(folder: Path) -> list[dict[str, Any]]:
    from inspect_ai.log import read_eval_log  # Inspect is heavy to import: only where logs are read

    out = []
    for path in sorted((folder / "logs").glob("*.eval")) + sorted((folder / "logs").glob("*.json")):
        try:
            log = read_eval_log(str(path), header_only=True)
        except Exception as err:  # a log being written or from another Inspect version: listed, not fatal
            out.append({"file": path.name, "error": f"unreadable: {type(err).__name__}"})
            continue
        metrics = {}
        for score in (log.results.scores if log.results else []):
            metrics.update({f"{score.name}/{k}": round(float(m.value), 4) for k, m in score.metrics.items()})
        out.append({"file": path.name, "task": log.eval.task, "model": log.eval.model, "status": log.status,
                    "samples": log.results.completed_samples if log.results else None, "metrics": metrics})
    return out


def assessment_data(request: Request, name: str) -> dict[str, Any]:
    ctx = request.app.state.ctx
    folder = ctx.catalog.assessment(check_name(name, "assessment"))
    md = folder / "capability_report.md"
    js = folder / "capability_report.json"
    report = json.loads(js.read_text(encoding="utf-8")) if js.is_file() else None
    models = ctx.catalog.models()
    model = models.get(name)
    return {"name": name, "folder": str(folder), "report": report,
            "markdown": md.read_text(encoding="utf-8") if md.is_file() else None,
            "determination": read_determination(model.path) if model else None,
            "gate": gate_status(ctx.catalog, name) if model else None, "logs": _logs(folder),
            "inspect_view": f"inspect view --log-dir {folder / 'logs'} --host 127.0.0.1"}


def _body(md: str, title: str) -> str:
    """The renderer's HTML body (every text in it escaped by `markdown_to_html`)."""
    page = markdown_to_html(md, title)
    return page[page.index("<body>") + len("<body>"):page.rindex("</body>")]


@router.get("/evals", response_class=HTMLResponse, include_in_schema=False)
def evals_page(request: Request) -> HTMLResponse:
    ctx = request.app.state.ctx
    rows = []
    for name in ctx.catalog.assessments():
        d = assessment_data(request, name)
        rows.append({"name": name, "asl": (d["determination"] or {}).get("asl"),
                     "crossed": (d["determination"] or {}).get("crossed"), "gate": d["gate"], "logs": len(d["logs"])})
    sets = {name: {"results": tj.results(path), "episodes": tj.episodes(path)}
            for name, path in ctx.catalog.trajectory_sets().items()}
    return ctx.templates.TemplateResponse(request, "evals.html", {"rows": rows, "sets": sets})


@router.get("/evals/{name}", response_class=HTMLResponse, include_in_schema=False)
def assessment_page(request: Request, name: str) -> HTMLResponse:
    d = assessment_data(request, name)
    html = _body(d["markdown"], f"Capability report: {name}") if d["markdown"] else None
    return request.app.state.ctx.templates.TemplateResponse(request, "assessment.html", {"d": d, "report_html": html})


@router.get("/api/evals", tags=["evals"])
def api_evals(request: Request) -> list[str]:
    """The models with an RSP capability report in this run."""
    return list(request.app.state.ctx.catalog.assessments())


@router.get("/api/evals/{name}", tags=["evals"])
def api_assessment(request: Request, name: str) -> dict[str, Any]:
    """A model's capability report (JSON and Markdown), determination, gate verdict and Inspect logs."""
    return assessment_data(request, name)


def _frame(set_name: str, shot: str | None, size: Any, action: Any) -> dict[str, Any]:
    return {"src": f"/files/trajectories/{set_name}/trajectories/{shot}" if shot else None, "size": size,
            "draw": tj.overlay(action)}


@router.get("/trajectories/{set_name}/{episode}", response_class=HTMLResponse, include_in_schema=False)
def episode_page(request: Request, set_name: str, episode: str) -> HTMLResponse:
    ctx = request.app.state.ctx
    ep = tj.episode(ctx.catalog.trajectory_set(check_name(set_name, "trajectory set")), episode)
    frames = [{**s, **_frame(set_name, s.get("screenshot"), s["size"], s.get("action"))} for s in ep["steps"]]
    final = _frame(set_name, ep["final"], ep["final_size"], None)
    return ctx.templates.TemplateResponse(request, "episode.html", {"set": set_name, "ep": ep, "frames": frames,
                                                                    "final": final})


@router.get("/api/trajectories", tags=["evals"])
def api_trajectory_sets(request: Request) -> dict[str, Any]:
    """Computer-use result folders: their results.json and episodes."""
    ctx = request.app.state.ctx
    return {name: {"results": tj.results(p), "episodes": tj.episodes(p)}
            for name, p in ctx.catalog.trajectory_sets().items()}


@router.get("/api/trajectories/{set_name}/{episode}", tags=["evals"])
def api_episode(request: Request, set_name: str, episode: str) -> dict[str, Any]:
    """One episode step by step: each action, its screenshot (under /files/trajectories/...), reward, error."""
    ctx = request.app.state.ctx
    return tj.episode(ctx.catalog.trajectory_set(check_name(set_name, "trajectory set")), episode)


@router.get("/files/trajectories/{set_name}/{path:path}", tags=["files"])
def trajectory_file(request: Request, set_name: str, path: str) -> FileResponse:
    """A file from inside a trajectory folder (never outside it)."""
    folder = request.app.state.ctx.catalog.trajectory_set(check_name(set_name, "trajectory set"))
    if not folder.is_dir():
        raise MissingInput(f"trajectory folder {set_name} is gone")
    return FileResponse(safe_file(folder, path), headers=FILE_HEADERS)
