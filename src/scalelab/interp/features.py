"""The feature store: per-feature statistics and examples in SQLite, for reports and a feature browser.

`compute_features` runs the SAE's model over text and stores, for every feature: activation density,
mean and max activation, an activation histogram (fixed log10 bins shared by all features, so one pass
suffices), its top-activating contexts and quantile samples (a window of tokens around the peak, with
the feature's activation on each token), and the output tokens its decoder direction promotes and
suppresses through the final norm's gain and the unembedding. Position 0 (BOS / attention sink) is not
scored, as in training. SQLite because the browser reads single features by id and the standard
library has it; `feature_markdown`/`feature_html` render one feature for people.
"""

from __future__ import annotations

import html
import json
import sqlite3
from pathlib import Path
from typing import Any

import torch

from scalelab.errors import InputError, MissingInput
from scalelab.interp.saelens import load_sae, site_of
from scalelab.interp.sites import parse_site, read_site
from scalelab.interp.text import batched, pack_rows, read_records
from scalelab.model.lm import load_lm

HIST_EDGES = [round(-4 + 0.25 * i, 2) for i in range(29)]  # log10(activation) from 1e-4 to 1e3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS features (id INTEGER PRIMARY KEY, density REAL, mean_act REAL, max_act REAL,
    hist TEXT, promoted TEXT, suppressed TEXT);
CREATE TABLE IF NOT EXISTS examples (feature INTEGER, kind TEXT, rank INTEGER, max_act REAL,
    tokens TEXT, acts TEXT);
CREATE INDEX IF NOT EXISTS examples_feature ON examples(feature);
"""


def _logit_effects(model: torch.nn.Module, w_dec: torch.Tensor, tokenizer: Any, n: int) -> tuple[list, list]:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else model.lm_head
    norm = getattr(getattr(model, "model", None), "norm", None)
    gain = norm.weight.detach() if norm is not None and hasattr(norm, "weight") else 1.0
    effects = (w_dec * gain) @ head.weight.detach().T  # (d_sae, vocab)
    top, bottom = effects.topk(n, dim=1), (-effects).topk(n, dim=1)

    def rows(vals: torch.Tensor, idx: torch.Tensor, sign: float) -> list[list[list]]:
        return [[[tokenizer.decode([int(t)]), round(sign * float(v), 4)] for v, t in zip(vr, ir, strict=True)]
                for vr, ir in zip(vals, idx, strict=True)]

    return rows(top.values, top.indices, 1.0), rows(bottom.values, bottom.indices, -1.0)


@torch.no_grad()
def compute_features(sae_dir: Path | str, text: Path | str, model_dir: Path | str | None = None,
                     db_path: Path | str | None = None, n_rows: int = 256, seq_len: int = 128,
                     top_k: int = 8, n_quantiles: int = 4, window: int = 10, batch_size: int = 16,
                     device: str = "cpu") -> Path:
    """Fill the feature store for the SAE in `sae_dir` (default `SAE_DIR/features.sqlite`)."""
    sae, cfg = load_sae(sae_dir)
    model_path = model_dir or (cfg.get("metadata") or {}).get("model_name")
    if not model_path:
        raise InputError(f"{sae_dir}/cfg.json names no model (metadata.model_name); pass the model folder")
    lm = load_lm(model_path, device)
    model, tokenizer = lm.model, lm.tokenizer
    from scalelab.interp.sites import n_layers

    site = parse_site(site_of(cfg), n_layers(model))
    ids, _ = pack_rows(tokenizer, read_records(text), seq_len, n_rows)
    d_sae = sae.cfg.d_sae
    edges = torch.tensor(HIST_EDGES)
    fires = torch.zeros(d_sae)
    sums = torch.zeros(d_sae)
    hist = torch.zeros(d_sae, len(HIST_EDGES) + 1)
    row_max = torch.zeros(len(ids), d_sae)

    def feats_of(batch: torch.Tensor) -> torch.Tensor:
        x = read_site(model, site, batch)
        if x.shape[-1] != sae.cfg.d_in:
            raise InputError(f"SAE d_in={sae.cfg.d_in} does not match site {site.name} of {model_path} "
                             f"(width {x.shape[-1]}); use the model and site the SAE was trained on")
        f = sae.encode(x.float())
        f[:, 0] = 0.0
        return f

    for b, batch in enumerate(batched(ids, batch_size)):
        f = feats_of(batch)
        on = f > 0
        fires += on.sum((0, 1))
        sums += f.sum((0, 1))
        row_max[b * batch_size:b * batch_size + len(batch)] = f.amax(1)
        vals = f[on]
        feat_idx = on.nonzero()[:, 2]
        bins = torch.bucketize(vals.clamp_min(1e-12).log10(), edges)
        hist.index_put_((feat_idx, bins), torch.ones_like(vals), accumulate=True)
    n_tokens = ids.shape[0] * (ids.shape[1] - 1)
    # Which (feature, row) pairs to show: the top rows, then rows at evenly spaced quantiles of the rest.
    wanted: dict[int, list[tuple[int, str, int]]] = {}
    order = row_max.argsort(0, descending=True)
    for j in range(d_sae):
        n_on = int((row_max[:, j] > 0).sum())
        for r in range(min(top_k, n_on)):
            wanted.setdefault(int(order[r, j]), []).append((j, "top", r))
        rest = n_on - top_k
        for q in range(n_quantiles if rest > 0 else 0):
            pos = top_k + int(rest * (q + 0.5) / n_quantiles)
            wanted.setdefault(int(order[pos, j]), []).append((j, "quantile", q))
    examples: list[tuple] = []
    rows_needed = sorted(wanted)
    for s in range(0, len(rows_needed), batch_size):
        chunk = rows_needed[s:s + batch_size]
        f = feats_of(ids[chunk])
        for i, row in enumerate(chunk):
            for j, kind, rank in wanted[row]:
                acts = f[i, :, j]
                peak = int(acts.argmax())
                lo, hi = max(1, peak - window), min(len(acts), peak + window + 1)
                toks = [tokenizer.decode([int(t)]) for t in ids[row, lo:hi]]
                examples.append((j, kind, rank, float(acts[peak]), json.dumps(toks),
                                 json.dumps([round(float(a), 4) for a in acts[lo:hi]])))
    promoted, suppressed = _logit_effects(model, sae.W_dec.detach() * sae.norm_scale, tokenizer, 10)
    db = Path(db_path) if db_path else Path(sae_dir) / "features.sqlite"
    tmp = db.with_name(db.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    with con:
        con.executescript(_SCHEMA)
        info = {"model": str(model_path), "site": site.name, "n_tokens": n_tokens, "hist_edges_log10": HIST_EDGES,
                "positions": ">= 1 (position 0 excluded)", "d_sae": d_sae}
        con.executemany("INSERT INTO info VALUES (?, ?)", [(k, json.dumps(v)) for k, v in info.items()])
        con.executemany("INSERT INTO features VALUES (?, ?, ?, ?, ?, ?, ?)", [
            (j, float(fires[j]) / n_tokens, float(sums[j] / fires[j].clamp_min(1)), float(row_max[:, j].max()),
             json.dumps(hist[j].int().tolist()), json.dumps(promoted[j]), json.dumps(suppressed[j]))
            for j in range(d_sae)])
        con.executemany("INSERT INTO examples VALUES (?, ?, ?, ?, ?, ?)", examples)
    con.close()
    tmp.replace(db)
    return db


def read_feature(db_path: Path | str, feature: int) -> dict[str, Any]:
    """One feature's record with its examples, as stored."""
    db = Path(db_path)
    if not db.is_file():
        raise MissingInput(f"{db} does not exist; build it with `scalelab interp features SAE_DIR`")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT * FROM features WHERE id = ?", (feature,)).fetchone()
        if row is None:
            n = con.execute("SELECT COUNT(*) FROM features").fetchone()[0]
            raise InputError(f"feature {feature} is not in {db}; valid ids are 0..{n - 1}")
        info = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM info")}
        ex = con.execute("SELECT kind, rank, max_act, tokens, acts FROM examples WHERE feature = ? "
                         "ORDER BY kind DESC, rank", (feature,)).fetchall()
    finally:
        con.close()
    return {"id": row[0], "density": row[1], "mean_act": row[2], "max_act": row[3], "hist": json.loads(row[4]),
            "promoted": json.loads(row[5]), "suppressed": json.loads(row[6]), "info": info,
            "examples": [{"kind": k, "rank": r, "max_act": m, "tokens": json.loads(t), "acts": json.loads(a)}
                         for k, r, m, t, a in ex]}


def _ctx_md(ex: dict[str, Any]) -> str:
    peak = max(ex["acts"]) or 1.0
    return "".join(f"**{t}**" if a > 0.5 * peak else t for t, a in zip(ex["tokens"], ex["acts"], strict=True))


def feature_markdown(feat: dict[str, Any]) -> str:
    lines = [f"### Feature {feat['id']}", "",
             f"Density {feat['density']:.4%} of tokens ({feat['info'].get('positions')}); "
             f"mean activation {feat['mean_act']:.3f}, max {feat['max_act']:.3f}.", "",
             "Promotes: " + ", ".join(f"`{t!r}` {v:+.2f}" for t, v in feat["promoted"][:8]),
             "", "Suppresses: " + ", ".join(f"`{t!r}` {v:+.2f}" for t, v in feat["suppressed"][:8]), ""]
    for ex in feat["examples"]:
        text = _ctx_md(ex).replace("\n", "⏎")
        lines.append(f"- {ex['kind']} {ex['rank']} (max {ex['max_act']:.2f}): {text}")
    return "\n".join(lines) + "\n"


def feature_html(feat: dict[str, Any]) -> str:
    def ctx(ex: dict[str, Any]) -> str:
        peak = max(ex["acts"]) or 1.0
        return "".join(f'<span title="{a:.3f}" style="background: rgba(255,120,0,{max(0.0, a) / peak:.2f})">'
                       f"{html.escape(t)}</span>" for t, a in zip(ex["tokens"], ex["acts"], strict=True))
    items = "".join(f"<li>{ex['kind']} {ex['rank']} ({ex['max_act']:.2f}): {ctx(ex)}</li>" for ex in feat["examples"])
    promo = ", ".join(f"<code>{html.escape(repr(t))}</code> {v:+.2f}" for t, v in feat["promoted"][:8])
    supp = ", ".join(f"<code>{html.escape(repr(t))}</code> {v:+.2f}" for t, v in feat["suppressed"][:8])
    return (f"<!doctype html><meta charset='utf-8'><title>Feature {feat['id']}</title>"
            f"<h3>Feature {feat['id']}</h3><p>Density {feat['density']:.4%}; mean {feat['mean_act']:.3f}, "
            f"max {feat['max_act']:.3f}</p><p>Promotes: {promo}</p><p>Suppresses: {supp}</p><ul>{items}</ul>\n")
