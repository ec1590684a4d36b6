"""Attribution graphs on disk in circuit-tracer's JSON format, so its graph viewer can open them.

circuit-tracer (0.5, the `circuit-tracer` package; it pins transformers 4.56–4.57 and so does not install beside
scalelab's transformers 5) writes one `<slug>.json` per graph — `metadata` (slug, scan, prompt tokens, node
threshold), `qParams` (the viewer's initial state), `nodes` and `links` (source, target, weight) — and lists the
graphs in `graph-metadata.json` beside them; its viewer (`circuit_tracer.frontend.local_server`) serves that
folder. Node ids follow its conventions: feature `{layer}_{latent}_{pos}`, error `0_{layer}_{pos}`, embedding
`E_{token}_{pos}`, logit `{layers + 1}_{token}_{pos}`; a feature's `feature` is the Cantor pairing of (layer,
latent), and the viewer reads a logit node's probability from its `clerp`, `Output "tok" (p=0.123)`. Only the
pruned graph is written: the nodes kept and the edges between them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from scalelab.artifacts import atomic_write_json
from scalelab.interp.circuits.attribution import Graph

GRAPH_INDEX = "graph-metadata.json"


def cantor(x: int, y: int) -> int:
    """The Cantor pairing of two non-negative integers (the viewer's feature key for a (layer, latent) pair)."""
    return (x + y) * (x + y + 1) // 2 + y


def pretty_token(text: str) -> str:
    """Whitespace the viewer shows as symbols."""
    return text.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵")


def _node(node_id: str, feature: int, layer: str, pos: int, kind: str, js_id: str, **extra: Any) -> dict[str, Any]:
    return {"node_id": node_id, "feature": feature, "layer": layer, "ctx_idx": pos, "feature_type": kind,
            "token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": js_id,
            "clerp": "", "influence": None, "activation": None, **extra}


def graph_nodes(graph: Graph, keep: torch.Tensor, cumulative: torch.Tensor, answer_text: str,
                labels: dict[tuple[int, int], str] | None = None) -> dict[int, dict[str, Any]]:
    """Viewer nodes for the kept node indices; `labels` names features by (layer, latent)."""
    nodes: dict[int, dict[str, Any]] = {}
    n_f, T, layers = graph.n_features, graph.n_pos, graph.n_layers
    for i in torch.nonzero(keep).squeeze(-1).tolist():
        inf = round(float(cumulative[i]), 6)
        if i < n_f:
            layer, pos, j = graph.features[i].tolist()
            nodes[i] = _node(f"{layer}_{j}_{pos}", cantor(layer, j), str(layer), pos, "cross layer transcoder",
                             f"{layer}_{j}-0", influence=inf, activation=round(float(graph.activations[i]), 6),
                             clerp=(labels or {}).get((layer, j), ""))
        elif i < graph.token_index(0):
            layer, pos = divmod(i - n_f, T)
            nodes[i] = _node(f"0_{layer}_{pos}", -1, str(layer), pos, "mlp reconstruction error", f"{layer}_{pos}-0",
                             influence=inf)
        elif i < graph.logit_index:
            pos = i - graph.token_index(0)
            tok = graph.tokens[pos]
            nodes[i] = _node(f"E_{tok}_{pos}", pos, "E", pos, "embedding", f"E_{tok}-{pos}", influence=inf)
        else:
            pos = T - 1
            nodes[i] = _node(f"{layers + 1}_{graph.answer}_{pos}", graph.answer, str(layers + 1), pos, "logit",
                             f"L_{graph.answer}-{pos}", token_prob=round(graph.probability, 6), is_target_logit=True,
                             clerp=f'Output "{pretty_token(answer_text)}" (p={graph.probability:.3f})')
    return nodes


def graph_json(graph: Graph, pruned: dict[str, torch.Tensor], slug: str, prompt: str, prompt_tokens: list[str],
               answer_text: str, scan: str, node_threshold: float,
               labels: dict[tuple[int, int], str] | None = None) -> dict[str, Any]:
    """The circuit-tracer JSON document of a pruned graph."""
    nodes = graph_nodes(graph, pruned["nodes"], pruned["cumulative"], answer_text, labels)
    dst, src = torch.nonzero(pruned["edges"], as_tuple=True)
    links = [{"source": nodes[s]["node_id"], "target": nodes[d]["node_id"],
              "weight": round(float(graph.adjacency[d, s]), 6)}
             for d, s in zip(dst.tolist(), src.tolist(), strict=True) if s in nodes and d in nodes]
    linked = {x for link in links for x in (link["source"], link["target"])}
    used = [n for n in nodes.values() if n["node_id"] in linked or n["feature_type"] in ("embedding", "logit")]
    metadata = {"slug": slug, "scan": scan, "transcoder_list": [], "prompt_tokens": [pretty_token(t) for t in
                                                                                      prompt_tokens],
                "prompt": prompt, "node_threshold": node_threshold, "schema_version": 1}
    return {"metadata": metadata,
            "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
            "nodes": used, "links": links}


def write_graph(doc: dict[str, Any], out_dir: Path | str) -> Path:
    """Write `<slug>.json` and add (or replace) its entry in the folder's `graph-metadata.json`."""
    out = Path(out_dir)
    slug = doc["metadata"]["slug"]
    path = out / f"{slug}.json"
    atomic_write_json(path, doc)
    index_path = out / GRAPH_INDEX
    index = json.loads(index_path.read_text("utf-8")) if index_path.is_file() else {"graphs": []}
    index["graphs"] = [g for g in index["graphs"] if g.get("slug") != slug] + [doc["metadata"]]
    atomic_write_json(index_path, index)
    return path
