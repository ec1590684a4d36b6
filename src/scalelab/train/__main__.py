"""`python -m scalelab.train`: pretrain one model from the command line (tests and `torchrun` use it).

    python -m scalelab.train --shards data/shards --out runs/d2 --preset smoke --depth 2 --set train.lr=1e-3
    torchrun --nproc_per_node 2 -m scalelab.train --shards ... --out ...

The model's vocabulary is taken from the shards' index.json. The summary is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from scalelab.config import ConfigError, load_config
from scalelab.data.loader import read_index
from scalelab.train.checkpoint import CheckpointError
from scalelab.train.loop import NonFiniteLossError, pretrain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scalelab.train", description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=Path, required=True, help="directory with index.json and .bin shards")
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, metrics, final/)")
    parser.add_argument("--preset", default="smoke", help="config preset: smoke, tiny or gpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. train.lr=1e-3 (repeatable)")
    parser.add_argument("--depth", type=int, default=None, help="model depth (the size dial)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder to copy into final/")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    parser.add_argument("--name", default="", help="run name in the summary")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.preset, args.overrides)
        if args.depth is not None:
            cfg.model.depth = args.depth
        cfg.model.vocab_size = int(read_index(args.shards)["vocab_size"])
        result = pretrain(cfg.model, cfg.train, args.shards, args.out, args.tokenizer,
                          resume=not args.no_resume, name=args.name)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (CheckpointError, NonFiniteLossError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
