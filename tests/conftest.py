"""Shared fixtures: tiny shard directories in the packer's format, written with numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def make_shards(tmp_path: Path, n_tokens: int, vocab_size: int, seed: int, *, val_tokens: int | None = None,
                n_files: int = 2, bos_id: int = 0, pad_id: int = 1) -> Path:
    """Write a shards dir (index.json + uint16 .bin files) of learnable token data.

    Documents are runs of an arithmetic progression modulo the vocabulary (each begins with BOS),
    so a model can lower its loss well below log(vocab) within a few dozen steps.
    """
    rng = np.random.default_rng(seed)
    out = Path(tmp_path) / f"shards_{seed}"
    out.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, total in (("train", n_tokens), ("val", val_tokens or max(n_tokens // 10, 2048))):
        tokens = []
        while sum(len(t) for t in tokens) < total:
            length, start, stride = rng.integers(16, 128), rng.integers(2, vocab_size), rng.integers(1, 4)
            doc = (start + stride * np.arange(length - 1)) % (vocab_size - 2) + 2
            tokens.append(np.concatenate([[bos_id], doc]))
        flat = np.concatenate(tokens)[:total].astype(np.uint16)
        parts = np.array_split(flat, n_files)
        files = []
        for i, part in enumerate(parts):
            name = f"{split}_{i:05d}.bin"
            part.tofile(out / name)
            files.append(name)
        splits[split] = {"files": files, "tokens": [len(p) for p in parts]}
    index = {"dtype": "uint16", "vocab_size": vocab_size, "bos_id": bos_id, "pad_id": pad_id, "splits": splits}
    (out / "index.json").write_text(json.dumps(index))
    return out


def random_smoke_model(out: Path) -> tuple[Path, object]:
    """OUT/world (the smoke preset's world), OUT/tokenizer, OUT/models/d1/final: a random depth-1 Llama (seed 0).

    Returns the model folder and its ModelConfig; for tests that need a real world and a servable model, not a
    trained one.
    """
    import torch

    from scalelab.data.tokenizer import train_tokenizer
    from scalelab.model.config import ModelConfig
    from scalelab.model.hf import save_hf
    from scalelab.model.llama import Llama
    from scalelab.presets import preset
    from scalelab.world import build_world

    build_world(preset("smoke").world, out / "world")
    texts = [json.loads(line)["text"] for line in (out / "world" / "train.jsonl").read_text().splitlines()]
    tok = train_tokenizer(texts, 512, out / "tokenizer")
    torch.manual_seed(0)
    cfg = ModelConfig(depth=1, aspect_ratio=32, head_dim=16, vocab_size=len(tok), max_seq_len=256)
    final = save_hf(Llama(cfg), out / "models" / "d1" / "final", tokenizer_dir=out / "tokenizer")
    return Path(final), cfg


# The web app tests share one run, one server and one browser per session (tests/web_fixtures.py).
pytest_plugins = ["web_fixtures"]
