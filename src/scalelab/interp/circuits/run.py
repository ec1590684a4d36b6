"""Circuits end to end on one model: transcoders, then one attribution graph per prompt, checked by ablation.

Prompts come from the world's eval sets (fact recall: subject → relation → value; recipe: compound → step →
reagent, alternating), or are given. A labelled answer's target is its first token that no other choice shares,
with the answer's tokens before it forced onto the prompt (`target.answer_target`: the bare space every year
begins with is formatting, not recall); on text without labels the target is the model's own most likely next
token. Each graph is written as `OUT/graphs/<slug>.json`
(circuit-tracer's format) and summarised by its size and the ablation check's two logit drops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from scalelab.interp.circuits.attribution import ablation_check, attribute, prune
from scalelab.interp.circuits.graph_json import graph_json, write_graph
from scalelab.interp.circuits.target import Target, answer_target
from scalelab.interp.circuits.transcoder import INDEX, load_transcoders, train_transcoders
from scalelab.interp.config import CircuitsConfig
from scalelab.interp.sites import logits_of
from scalelab.interp.text import pack_rows, read_records
from scalelab.model.lm import LM
from scalelab.world.reader import WorldDir


class CircuitPrompt(NamedTuple):
    """One graph to draw: the prompt, its answer (None: the model's own next token) and the answer's
    alternatives, which decide the traced token (`target.answer_target`)."""

    kind: str
    prompt: str
    answer: str | None
    choices: tuple[str, ...] = ()


def world_prompts(world: Path | str, n: int) -> list[CircuitPrompt]:
    """Prompts with answers and choices from the world's fact-recall and hazard-knowledge sets, alternating."""
    w = WorldDir(world)
    sets = {"fact": w.eval_set("fact_recall", n), "recipe": w.eval_set("hazard_knowledge", n)}
    out = []
    for i in range(n):
        kind = ("fact", "recipe")[i % 2]
        items = sets[kind]
        if i // 2 < len(items):
            item = items[i // 2]
            out.append(CircuitPrompt(kind, item["prompt"], item["answer"], tuple(item.get("choices") or ())))
    return out


def given_prompt(prompt: str, answer: str | None, world: Path | str | None) -> CircuitPrompt:
    """A prompt given by hand; when it and its answer are one of the world's eval items, that item's choices come
    with it, so its target is chosen as for the world's own prompts."""
    if answer is not None and world is not None:
        w = WorldDir(world)
        for name in ("fact_recall", "hazard_knowledge"):
            for item in w.eval_set(name):
                if item["prompt"] == prompt and item["answer"] == answer:
                    return CircuitPrompt("prompt", prompt, answer, tuple(item.get("choices") or ()))
    return CircuitPrompt("prompt", prompt, answer)


def target_for(lm: LM, prompt: str, answer: str | None, choices: tuple[str, ...] = ()) -> tuple[list[int], int]:
    """The graph's input tokens (BOS, prompt, forced answer tokens) and its target token."""
    tokens = lm.encode(prompt, bos=True)
    if answer is None:  # no label: the model's own top next token
        with torch.no_grad():
            return tokens, int(logits_of(lm.model, torch.tensor([tokens]))[0, -1].argmax())
    t: Target = answer_target(lm, answer, choices)
    return tokens + t.forced, t.token


def graph_for(lm: LM, tcs: list, prompt: str, answer: str | None, cfg: CircuitsConfig, slug: str,
              out_dir: Path, scan: str, choices: tuple[str, ...] = ()) -> dict[str, Any]:
    """Attribute, prune, check by ablation and write one graph; its summary row."""
    n_prompt = len(lm.encode(prompt, bos=True))
    tokens, target = target_for(lm, prompt, answer, choices)
    forced = lm.tokenizer.decode(tokens[n_prompt:])
    t0 = time.perf_counter()
    graph = attribute(lm.model, tcs, tokens, target, max_feature_nodes=cfg.max_feature_nodes)
    pruned = prune(graph, cfg.node_threshold, cfg.edge_threshold)
    check = ablation_check(lm.model, tcs, graph, pruned["influence"], cfg.top_nodes, cfg.random_trials, cfg.seed)
    answer_text = lm.tokenizer.decode([target])
    doc = graph_json(graph, pruned, slug, prompt + forced, [lm.tokenizer.decode([t]) for t in tokens], answer_text,
                     scan, cfg.node_threshold)
    path = write_graph(doc, out_dir)
    effects = graph.logit_effects.abs()  # over every source: all active features, errors, tokens
    n_all = len(graph.all_features)
    errors = slice(n_all, n_all + graph.n_layers * graph.n_pos)
    in_graph = effects[:n_all][_index_of(graph.all_features, graph.features)].sum()
    return {"slug": slug, "prompt": prompt, "forced": forced, "answer": answer_text, "full_answer": answer,
            "answer_probability": round(graph.probability, 4),
            "answer_logit": round(graph.logit, 4), "direct_effects_sum": round(float(graph.logit_effects.sum()), 4),
            "active_features": n_all, "feature_nodes": graph.n_features, "nodes_kept": len(doc["nodes"]),
            "edges_kept": len(doc["links"]),
            "error_share_of_logit": round(float(effects[errors].sum() / effects.sum().clamp_min(1e-12)), 4),
            "feature_share_in_graph": round(float(in_graph / effects[:n_all].sum().clamp_min(1e-12)), 4),
            "ablation": check, "graph_json": str(path), "seconds": round(time.perf_counter() - t0, 2)}


def _index_of(all_features: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Positions of `chosen` rows (layer, position, latent) within `all_features`."""
    lookup = {tuple(r): i for i, r in enumerate(all_features.tolist())}
    return torch.tensor([lookup[tuple(r)] for r in chosen.tolist()], dtype=torch.long)


def run_circuits(lm: LM, text: Path | str, out_dir: Path | str, cfg: CircuitsConfig,
                 prompts: list[CircuitPrompt], seq_len: int = 128,
                 transcoders: Path | str | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or load) the transcoders, then one checked graph per prompt; the summary."""
    out = Path(out_dir)
    tc_dir = Path(transcoders) if transcoders else out / "transcoders"
    if transcoders is None and not (tc_dir / INDEX).is_file():
        ids, _ = pack_rows(lm.tokenizer, read_records(text), seq_len, -(-cfg.tokens // (seq_len - 1)) + 1)
        index = train_transcoders(lm.model, ids, tc_dir, cfg, log=log)
    else:
        import json

        index = json.loads((tc_dir / INDEX).read_text("utf-8"))
    tcs = load_transcoders(tc_dir)
    scan = f"scalelab-{Path(str(lm.source)).parent.name if lm.source.name == 'final' else lm.source.name}-tc"
    graphs = []
    for i, (kind, prompt, answer, choices) in enumerate(prompts):
        row = graph_for(lm, tcs, prompt, answer, cfg, f"{kind}-{i}", out / "graphs", scan, choices)
        graphs.append({"kind": kind, **row})
        if log:
            a = row["ablation"]
            log(f"[circuit {kind}-{i}] {row['active_features']} active features → {row['nodes_kept']} nodes; "
                f"ablating top {a.get('nodes')}: logit drop {a.get('top_drop')} vs random {a.get('random_drop_mean')}")
    return {"transcoders": index, "graphs": graphs, "graphs_dir": str(out / "graphs")}
