"""Grounded answers measured on a run's world (`scalelab.web.ground.evaluate`): answer accuracy with and without
retrieval, citation precision, retrieval recall@k, abstention on unsupported questions, latency.

    python benchmarks/web_grounded.py --run out/run --model posttrain/character -n 100
    python benchmarks/web_grounded.py --run out/run --model smollm2=out/smollm2   # any HF folder
    python benchmarks/web_grounded.py --run out/run --embedder out/all-MiniLM-L6-v2   # BM25 fused with dense

Prints one JSON object (also written with --out FILE). The judging model runs with one torch thread, as the
server runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from scalelab.errors import UserError
from scalelab.layout import RunLayout
from scalelab.model.lm import load_lm
from scalelab.web.ground.dense import load_embedder
from scalelab.web.ground.docs import read_documents
from scalelab.web.ground.evaluate import evaluate
from scalelab.web.ground.index import PassageIndex
from scalelab.world.reader import WorldDir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a `scalelab run --out` folder (its world is indexed)")
    ap.add_argument("--model", action="append", default=[],
                    help="a model folder relative to the run (posttrain/character) or NAME=FOLDER; repeatable")
    ap.add_argument("-n", type=int, default=100, help="questions per group (stated, unstated, unknown)")
    ap.add_argument("-k", type=int, default=5, help="passages retrieved")
    ap.add_argument("--min-pmi", type=float, default=2.0)
    ap.add_argument("--embedder", help="encoder folder or hub name: BM25 fused with dense retrieval (recall@k is "
                                       "then reported for each retriever and the fusion)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    world = RunLayout(args.run).world
    try:
        embedder = load_embedder(args.embedder) if args.embedder else None
    except UserError as err:  # one line and exit 2, as the scalelab commands
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    t0 = time.perf_counter()
    index = PassageIndex(read_documents(world), embedder=embedder)
    report: dict = {"run": str(args.run), "embedder": args.embedder, "load_avg_start": os.getloadavg(),
                    "index_seconds": round(time.perf_counter() - t0, 2), "models": {}}
    for spec in args.model or [None]:
        name, _, path = (spec or "").partition("=")
        folder = Path(path) if path else (args.run / spec if spec else None)
        lm = load_lm(folder) if folder else None
        print(f"[{spec or 'no model'}]", flush=True)
        report["models"][name or "none"] = evaluate(index, WorldDir(world).world(), lm, n=args.n, k=args.k,
                                                    min_pmi=args.min_pmi, log=print)
    report["load_avg_end"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
