"""`scalelab serve --out RUN`: start the web app on one run (uvicorn, one process, one torch thread)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from scalelab.errors import InputError, MissingInput, UserError
from scalelab.web.security import TOKEN_ENV


def parse_models(specs: list[str]) -> dict[str, Path]:
    """`["smollm2=out/smollm2"]` → {"smollm2": Path("out/smollm2")}."""
    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--model {spec!r} must be NAME=FOLDER, e.g. smollm2=out/smollm2")
        out[name] = Path(path)
    return out


def serve(out: Annotated[Path, typer.Option("--out", "-o", help="the run folder (a `scalelab run --out`)")],
          docs: Annotated[Path | None, typer.Option(
              "--docs", help="folder of .txt/.md/.jsonl/.html to answer from (default: the run's world)")] = None,
          host: Annotated[str, typer.Option(help=f"address to bind; anything but loopback needs {TOKEN_ENV}")]
          = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port")] = 8765,
          model: Annotated[list[str] | None, typer.Option(
              "--model", "-m", help="also serve NAME=FOLDER (e.g. smollm2=out/smollm2 from `scalelab import-gguf`)")]
          = None,
          trajectories: Annotated[list[Path] | None, typer.Option(
              "--trajectories", help="a `scalelab computer run --out` folder to show (repeatable)")] = None,
          ask_model: Annotated[str | None, typer.Option(
              "--ask-model", help="model that judges grounded answers (default: the last post-training step)")]
          = None,
          embedder: Annotated[str | None, typer.Option(
              "--embedder", help="encoder folder (save_pretrained layout, e.g. a downloaded all-MiniLM-L6-v2) or hub "
                                 "name: dense retrieval fused with BM25 (default: BM25 alone)")] = None) -> None:
    """Serve the web app: runs and lineage, report and plots, features, chat (steering, RSP gate), grounded
    answers, evals and trajectories, and the JSON API (/docs)."""
    try:
        _serve(out, docs, host, port, model or [], trajectories or [], ask_model, embedder)
    except UserError as err:  # as every scalelab command: one line, exit 2
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _serve(out: Path, docs: Path | None, host: str, port: int, models: list[str], trajectories: list[Path],
           ask_model: str | None, embedder: str | None) -> None:
    try:  # the web extra, loaded only when serving
        import uvicorn

        from scalelab.web.app import ServeSettings, create_app
    except ImportError as err:
        raise MissingInput(f"scalelab serve needs the web extra ({err.name} is not installed): "
                           "pip install -e '.[web]'") from err
    import torch

    torch.set_num_threads(1)  # small models: one thread answers as fast, and leaves the other core to the server
    settings = ServeSettings(run=out, docs=docs, host=host, port=port, token=os.environ.get(TOKEN_ENV) or None,
                             models=parse_models(models), trajectories=list(trajectories), ask_model=ask_model,
                             embedder=embedder)
    app = create_app(settings)
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    typer.echo(f"scalelab serve: http://{shown}:{port}/  (API docs: /docs)"
               + ("  — token required" if settings.token else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning")
