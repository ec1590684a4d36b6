"""The feature browser's data: one feature's record, its best world concept, and search by concept or token.

Records come from the feature store (`interp.features.read_feature`). The store does not keep each feature's
best concept, so it is scored here the way the interp stage scores features (`interp.concepts`): the SAE reads
the run's world validation text, a feature is *on* where it fires, and its best concept maximises F1 over the
world's per-token concept labels, with that concept's precision and recall. That takes a second or two for the
run's SAE, once per SAE (kept in memory). Search matches a concept name, or a token: the token at the peak of a
feature's top contexts, or one its decoder direction promotes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import torch

from scalelab.interp.concepts import score_against_concepts
from scalelab.interp.features import HIST_EDGES, read_feature
from scalelab.interp.saelens import load_sae, site_of
from scalelab.interp.sites import n_layers, parse_site, read_site
from scalelab.interp.text import batched, pack_rows, read_records
from scalelab.model.lm import load_lm
from scalelab.web.catalog import RunCatalog
from scalelab.world.lexicon import all_concepts

STORE = "features.sqlite"


@torch.no_grad()
def feature_concepts(sae_dir: Path, world_dir: Path, rows: int = 64, seq_len: int = 128) -> list[dict[str, Any]]:
    """Per feature: its best world concept (by F1) with precision, recall and how often it fired."""
    sae, cfg = load_sae(sae_dir)
    lm = load_lm((cfg.get("metadata") or {})["model_name"])
    concepts = all_concepts()
    ids, labels = pack_rows(lm.tokenizer, read_records(world_dir / "val.jsonl"), seq_len, rows, concepts)
    site = parse_site(site_of(cfg), n_layers(lm.model))
    active = torch.cat([sae.encode(read_site(lm.model, site, b)[:, 1:].float()).flatten(0, 1) > 0
                        for b in batched(ids, 16)])
    lab = labels[:, 1:].reshape(-1)
    _, scores = score_against_concepts(active, lab, concepts)
    fires = active[lab >= 0].sum(0)
    return [{"concept": concepts[int(scores["concept"][j])] if fires[j] > 0 else None,
             "precision": round(float(scores["precision"][j]), 4), "recall": round(float(scores["recall"][j]), 4),
             "fires": int(fires[j])} for j in range(active.shape[1])]


class FeatureBrowser:
    """Feature records, concepts and search for the SAEs of a run."""

    def __init__(self, catalog: RunCatalog) -> None:
        self.catalog = catalog
        self._concepts: dict[str, list[dict[str, Any]] | None] = {}
        self._peaks: dict[str, list[tuple[int, str, str]]] = {}
        self._lock = threading.Lock()

    def _db(self, sae: str) -> Path:
        return self.catalog.sae(sae) / STORE

    def info(self, sae: str) -> dict[str, Any]:
        con = sqlite3.connect(f"file:{self._db(sae)}?mode=ro", uri=True)
        try:
            info = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM info")}
            info["features"] = con.execute("SELECT COUNT(*) FROM features").fetchone()[0]
        finally:
            con.close()
        return {**info, "sae": sae, "steers_model": self.catalog.sae_model(sae)}

    def concepts(self, sae: str) -> list[dict[str, Any]] | None:
        """Every feature's best concept (None when the run has no world to score against)."""
        with self._lock:
            if sae not in self._concepts:
                world = self.catalog.layout.world
                self._concepts[sae] = (feature_concepts(self.catalog.sae(sae), world)
                                       if (world / "val.jsonl").is_file() else None)
            return self._concepts[sae]

    def feature(self, sae: str, feature: int) -> dict[str, Any]:
        rec = read_feature(self._db(sae), feature)
        concepts = self.concepts(sae)
        rec["concept"] = concepts[feature] if concepts and feature < len(concepts) else None
        rec["hist_edges_log10"] = HIST_EDGES
        rec["sae"] = sae
        rec["steers_model"] = self.catalog.sae_model(sae)
        return rec

    def _peak_tokens(self, sae: str) -> list[tuple[int, str, str]]:
        """(feature, token at the peak of each top context, a promoted token) rows, read once per SAE."""
        with self._lock:
            if sae not in self._peaks:
                con = sqlite3.connect(f"file:{self._db(sae)}?mode=ro", uri=True)
                try:
                    rows = []
                    for f, toks, acts in con.execute("SELECT feature, tokens, acts FROM examples WHERE kind='top'"):
                        t, a = json.loads(toks), json.loads(acts)
                        rows.append((int(f), t[max(range(len(a)), key=a.__getitem__)] if a else "", "peak"))
                    for f, promoted in con.execute("SELECT id, promoted FROM features"):
                        rows += [(int(f), tok, "promoted") for tok, _ in json.loads(promoted)[:5]]
                finally:
                    con.close()
                self._peaks[sae] = rows
            return self._peaks[sae]

    def search(self, sae: str, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Features whose best concept contains `query`, then those whose peak or promoted tokens equal it."""
        q = query.strip().lower()
        concepts = self.concepts(sae) or []
        hits: dict[int, dict[str, Any]] = {}
        if q:
            for j, c in enumerate(concepts):
                if c["concept"] and q in c["concept"].lower():
                    hits[j] = {"feature": j, "match": f"concept {c['concept']}", **c}
            for j, tok, how in self._peak_tokens(sae):
                if j not in hits and tok.strip().lower() == q:
                    hits[j] = {"feature": j, "match": f"{how} token {tok!r}",
                               **(concepts[j] if j < len(concepts) else {})}
        else:
            hits = {j: {"feature": j, "match": "best precision", **c} for j, c in enumerate(concepts)
                    if c["concept"] and c["fires"] >= 5}
        # features that fired on a handful of tokens can be "100% precise" by luck: the well-attested come first
        return sorted(hits.values(), key=lambda h: (h.get("fires", 0) < 5, -h.get("precision", 0.0),
                                                    h["feature"]))[:limit]
