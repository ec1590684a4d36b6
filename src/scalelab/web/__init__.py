"""`scalelab serve`: a local web app over one run — its runs and lineage, report and zoomable scaling plots,
SAE features, chat with steering behind the RSP gate, answers grounded in documents with citations, RSP reports
with Inspect logs, and computer-use trajectories — with the JSON API behind every page (`/docs`).

`app.create_app(ServeSettings(run=...))` builds the ASGI app; `cli.serve` runs it with uvicorn.
"""
