"""Attribution graphs: which transcoder features carry a prompt's answer, by their direct effects.

Following Anthropic's 2025 circuit tracing (Ameisen et al.), the model is made linear around one prompt: every
MLP's output is replaced by its transcoder's reconstruction plus an error term (together exactly the MLP's
output, held constant), attention patterns are frozen (queries and keys detached: only the value path carries
gradient) and every RMSNorm's scale is frozen (its 1/rms detached). What remains is linear in the token
embeddings and the MLP outputs, so the *direct effect* of a source node on a target is exact:

    source feature (layer l, position p, latent j), activation a:   a · (d_j · ∂target/∂mlp_out_l[p])
    error node (l, p) — the MLP output no active feature explains:     e_lp · ∂target/∂mlp_out_l[p]
    token embedding at p:                                              emb_p · ∂target/∂emb[p]

Targets are every active feature's pre-activation and the answer's logit. The node influence on the logit is
the sum over paths of normalised |edge| products (circuit-tracer's pruning); nodes are kept until they carry
`node_threshold` of it. Because the error nodes take the transcoders' decoder bias too, the direct effects on
the logit of all nodes add up to the logit exactly (`completeness`, tested).

The check that the graph means something is causal: `ablation_check` removes the top nodes' decoder writes
from the real model (which then runs unfrozen, every MLP its own) and compares the answer logit's drop with
the drop from removing as many random active features.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scalelab.interp.circuits.transcoder import Transcoder
from scalelab.interp.sites import Site, decoder_layers, embedding_module, logits_of, read_sites, site_hook


@dataclass
class Graph:
    """An attribution graph: nodes [features, errors (layer-major), tokens, logit]; adjacency[target, source]."""

    tokens: list[int]
    answer: int
    features: torch.Tensor  # (n_f, 3): layer, position, latent
    activations: torch.Tensor  # (n_f,)
    adjacency: torch.Tensor  # (n, n) rows = targets, columns = sources
    n_layers: int
    logit: float
    probability: float
    all_features: torch.Tensor | None = None  # every active feature (n_all, 3), nodes or not
    logit_effects: torch.Tensor | None = None  # the logit's direct effects from all sources (complete)

    @property
    def n_pos(self) -> int:
        return len(self.tokens)

    @property
    def n_features(self) -> int:
        return len(self.features)

    def error_index(self, layer: int, pos: int) -> int:
        return self.n_features + layer * self.n_pos + pos

    def token_index(self, pos: int) -> int:
        return self.n_features + self.n_layers * self.n_pos + pos

    @property
    def logit_index(self) -> int:
        return self.adjacency.shape[0] - 1


@contextlib.contextmanager
def _frozen_linearisation(model: nn.Module, mlp_outs: list[torch.Tensor], emb_inj: torch.Tensor,
                          mlp_inj: list[torch.Tensor], mlp_ins: list[torch.Tensor]) -> Iterator[None]:
    """Hooks making the forward linear: constant MLP outputs (+ an injection point each), detached q/k and norm
    scales; each MLP's input is recorded (with its graph) in `mlp_ins`."""
    hooks = []
    layers = decoder_layers(model)
    try:
        hooks.append(embedding_module(model).register_forward_hook(lambda _m, _a, out: out + emb_inj))
        for i, block in enumerate(layers):
            def mlp_hook(_m: nn.Module, args: tuple, _out: torch.Tensor, i: int = i) -> torch.Tensor:
                mlp_ins.append(args[0])
                return mlp_outs[i].expand_as(args[0]) + mlp_inj[i]
            hooks.append(block.mlp.register_forward_hook(mlp_hook))
            attn = block.self_attn
            for proj in (attn.q_proj, attn.k_proj):
                hooks.append(proj.register_forward_hook(lambda _m, _a, out: out.detach()))
        for module in model.modules():
            if type(module).__name__.endswith("RMSNorm"):
                hooks.append(module.register_forward_hook(_frozen_norm))
        yield
    finally:
        for h in hooks:
            h.remove()


def _frozen_norm(module: nn.Module, args: tuple, _out: torch.Tensor) -> torch.Tensor:
    x = args[0]
    eps = getattr(module, "eps", None) or getattr(module, "variance_epsilon", 1e-6)
    scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).detach()
    return (x.float() * scale * module.weight).to(x.dtype)


@torch.no_grad()
def _clean_pass(model: nn.Module, ids: torch.Tensor, tcs: list[Transcoder]
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Per layer: MLP inputs, MLP outputs, transcoder activations (each (T, ·)); and the clean logits (T, V)."""
    n = len(tcs)
    sites = [Site("mlp_in", i) for i in range(n)] + [Site("mlp_out", i) for i in range(n)]
    grabbed: dict[str, torch.Tensor] = {}
    with contextlib.ExitStack() as stack:
        for s in sites:
            stack.enter_context(site_hook(model, s, lambda x, name=s.name: grabbed.__setitem__(name, x.detach())))
        logits = logits_of(model, ids)[0]
    ins = [grabbed[f"mlp_in.{i}"][0].float() for i in range(n)]
    outs = [grabbed[f"mlp_out.{i}"][0].float() for i in range(n)]
    feats = [tc.encode(x) for tc, x in zip(tcs, ins, strict=True)]
    return ins, outs, feats, logits.float()


class _Rows:
    """Direct effects of every source (all active features, error nodes, token embeddings) on chosen targets."""

    def __init__(self, model: nn.Module, tcs: list[Transcoder], tokens: list[int]) -> None:
        self.model, self.tcs = model, tcs
        self.ids = torch.tensor([tokens])
        _, self.outs, feats, self.logits = _clean_pass(model, self.ids, tcs)
        self.n_layers, self.T = len(tcs), len(tokens)
        self.active = [torch.nonzero(f > 0) for f in feats]  # (position, latent) per layer
        self.features = torch.cat([torch.cat([torch.full((len(a), 1), i), a], 1) for i, a in enumerate(self.active)])
        self.acts = [feats[i][a[:, 0], a[:, 1]] for i, a in enumerate(self.active)]
        # Error node = the MLP output minus the active features' decoder writes (so it takes the decoder bias too).
        self.errors = torch.stack([self.outs[i] - feats[i] @ tcs[i].W_dec.detach() for i in range(self.n_layers)])
        self.emb = embedding_module(model)(self.ids)[0].detach().float()
        self.n_f = len(self.features)
        self.n_src = self.n_f + self.n_layers * self.T + self.T

    def __call__(self, targets: list[tuple[Any, int, int]]) -> torch.Tensor:
        """(len(targets), n_src): a target is (layer, position, latent) for a feature's pre-activation or
        ("logit", position, token)."""
        b, T = len(targets), self.T
        emb_inj = torch.zeros(b, T, self.emb.shape[-1], requires_grad=True)
        mlp_inj = [torch.zeros(b, T, self.outs[0].shape[-1], requires_grad=True) for _ in range(self.n_layers)]
        mlp_ins: list[torch.Tensor] = []
        with torch.enable_grad(), _frozen_linearisation(self.model, [o[None] for o in self.outs], emb_inj, mlp_inj,
                                                        mlp_ins):
            out_logits = logits_of(self.model, self.ids.expand(b, T))
            values = []
            for row, (layer, pos, j) in enumerate(targets):
                if layer == "logit":
                    values.append(out_logits[row, pos, j])
                else:
                    tc = self.tcs[layer]
                    values.append(mlp_ins[layer][row, pos].float() @ tc.W_enc[:, j] + tc.b_enc[j])
            grads = torch.autograd.grad(torch.stack(values).sum(), [emb_inj, *mlp_inj], allow_unused=True)
        g_emb = torch.zeros_like(emb_inj) if grads[0] is None else grads[0]
        g_mlp = torch.stack([torch.zeros_like(mlp_inj[0]) if g is None else g for g in grads[1:]], 1)  # (b, L, T, d)
        feats = []
        for layer, (a, act) in enumerate(zip(self.active, self.acts, strict=True)):
            # every latent's effect at every position in one matmul, then the active ones picked out
            per_latent = g_mlp[:, layer] @ self.tcs[layer].W_dec.detach().T  # (b, T, d_tc)
            feats.append(per_latent[:, a[:, 0], a[:, 1]] * act)
        errs = (g_mlp * self.errors).sum(-1).flatten(1)
        return torch.cat([*feats, errs, (g_emb * self.emb).sum(-1)], 1)


def attribute(model: nn.Module, tcs: list[Transcoder], tokens: list[int], answer: int,
              max_feature_nodes: int = 256, batch_size: int = 64) -> Graph:
    """The attribution graph of `answer` as the next token after `tokens` (which start with BOS).

    The answer logit's row covers every active feature; feature rows are computed for at most
    `max_feature_nodes` features, chosen in rounds by their influence on the logit through the rows computed so
    far (circuit-tracer's budget: a long prompt has thousands of active features). The graph's feature nodes are
    those; the effects of the others on them are left out, as in circuit-tracer.
    """
    rows = _Rows(model, tcs, tokens)
    n_f, n_src, T = rows.n_f, rows.n_src, rows.T
    logit_row = rows([("logit", T - 1, answer)])[0]
    feature_rows: dict[int, torch.Tensor] = {}
    budget = min(max_feature_nodes, n_f)
    while len(feature_rows) < budget:
        score = _partial_influence(logit_row, feature_rows, n_f)
        if feature_rows:
            score[list(feature_rows)] = -1.0
        pick = score.argsort(descending=True)[:min(batch_size, budget - len(feature_rows))].tolist()
        got = rows([tuple(int(v) for v in rows.features[i].tolist()) for i in pick])  # type: ignore[misc]
        feature_rows.update(zip(pick, got, strict=True))
    chosen = torch.tensor(sorted(feature_rows), dtype=torch.long)
    # Nodes: the chosen features, then every error node and token, then the logit.
    keep_cols = torch.cat([chosen, torch.arange(n_f, n_src)])
    n = len(keep_cols) + 1
    adjacency = torch.zeros(n, n)
    for r, i in enumerate(chosen.tolist()):
        adjacency[r, :n - 1] = feature_rows[i][keep_cols]
    adjacency[n - 1, :n - 1] = logit_row[keep_cols]
    probs = torch.softmax(rows.logits[-1], -1)
    all_acts = torch.cat(rows.acts)
    graph = Graph(tokens, answer, rows.features[chosen], all_acts[chosen], adjacency, rows.n_layers,
                  float(rows.logits[-1, answer]), float(probs[answer]))
    graph.all_features, graph.logit_effects = rows.features, logit_row
    return graph


def _partial_influence(logit_row: torch.Tensor, feature_rows: dict[int, torch.Tensor], n_f: int) -> torch.Tensor:
    """Each feature's influence on the logit through the rows known so far (unexpanded features have none)."""
    def norm(r: torch.Tensor) -> torch.Tensor:
        return r.abs() / r.abs().sum().clamp_min(1e-10)

    current = norm(logit_row)
    total = current.clone()
    known = list(feature_rows)
    mat = torch.stack([norm(feature_rows[i]) for i in known]) if known else None
    for _ in range(len(known) + 1):
        if mat is None:
            break
        current = current[known] @ mat
        if not current.any():
            break
        total += current
    return total[:n_f]


def influence(adjacency: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_k w·Aᵏ over the row-normalised |A| (a DAG's series ends): every node's total influence on the targets."""
    a = adjacency.abs()
    a = a / a.sum(1, keepdim=True).clamp_min(1e-10)
    current, total = weights @ a, torch.zeros_like(weights)
    for _ in range(a.shape[0] + 1):
        if not current.any():
            break
        total += current
        current = current @ a
    return total


def _threshold(scores: torch.Tensor, fraction: float) -> float:
    ordered = scores.flatten().sort(descending=True).values
    cum = ordered.cumsum(0) / ordered.sum().clamp_min(1e-12)
    return float(ordered[min(int(torch.searchsorted(cum, fraction)), len(ordered) - 1)])


def prune(graph: Graph, node_threshold: float, edge_threshold: float) -> dict[str, torch.Tensor]:
    """Nodes carrying `node_threshold` of the logit's influence and edges carrying `edge_threshold` of what
    remains (tokens and the logit always kept); returns masks and each node's cumulative influence rank."""
    n = graph.adjacency.shape[0]
    w = torch.zeros(n)
    w[graph.logit_index] = 1.0
    node_inf = influence(graph.adjacency, w)
    keep = node_inf >= _threshold(node_inf, node_threshold)
    keep[graph.token_index(0):] = True
    pruned = graph.adjacency.clone()
    pruned[~keep] = 0
    pruned[:, ~keep] = 0
    a = pruned.abs()
    a = a / a.sum(1, keepdim=True).clamp_min(1e-10)
    edge_scores = a * (influence(pruned, w) + w)[:, None]
    edges = edge_scores >= _threshold(edge_scores, edge_threshold)
    edges &= pruned != 0
    for _ in range(graph.n_layers + 2):  # drop features/errors left without an outgoing or feature w/o incoming edge
        before = keep.clone()
        keep[:graph.token_index(0)] &= edges[:, :graph.token_index(0)].any(0)
        keep[:graph.n_features] &= edges[:graph.n_features].any(1)
        edges[~keep] = False
        edges[:, ~keep] = False
        if torch.equal(before, keep):
            break
    order = node_inf.argsort(descending=True)
    cumulative = torch.zeros(n)
    cumulative[order] = node_inf[order].cumsum(0) / node_inf.sum().clamp_min(1e-12)
    return {"nodes": keep, "edges": edges, "influence": node_inf, "cumulative": cumulative}


@torch.no_grad()
def answer_logit(model: nn.Module, tcs: list[Transcoder], tokens: list[int], answer: int,
                 ablate: torch.Tensor | None = None) -> float:
    """The answer's logit in the real model, with the given feature nodes' ((k, 3) layer, pos, latent) decoder
    writes removed from their MLP outputs (the rest of the forward runs as usual)."""
    ids = torch.tensor([tokens])
    if ablate is None or len(ablate) == 0:
        return float(logits_of(model, ids)[0, -1, answer])
    ins = read_sites(model, [Site("mlp_in", int(layer)) for layer in ablate[:, 0].unique()], ids)
    with contextlib.ExitStack() as stack:
        for layer in ablate[:, 0].unique().tolist():
            rows = ablate[ablate[:, 0] == layer]
            tc = tcs[layer]
            f = tc.encode(ins[f"mlp_in.{layer}"][0].float())
            delta = torch.zeros_like(ins[f"mlp_in.{layer}"][0], dtype=torch.float32)
            for _, pos, j in rows.tolist():
                delta[pos] += f[pos, j] * tc.W_dec[j]

            def remove(out: torch.Tensor, delta: torch.Tensor = delta) -> torch.Tensor:
                return out - delta.to(out.dtype)
            stack.enter_context(site_hook(model, Site("mlp_out", layer), remove))
        return float(logits_of(model, ids)[0, -1, answer])


def ablation_check(model: nn.Module, tcs: list[Transcoder], graph: Graph, influence_scores: torch.Tensor,
                   top_nodes: int, trials: int, seed: int = 0) -> dict[str, Any]:
    """Answer-logit drop from ablating the `top_nodes` most influential feature nodes vs as many random active
    features (drawn from every active feature of the prompt, not only the graph's)."""
    n_f = graph.n_features
    k = min(top_nodes, n_f)
    if k == 0:
        return {"nodes": 0}
    pool = graph.all_features if graph.all_features is not None else graph.features
    clean = answer_logit(model, tcs, graph.tokens, graph.answer)
    top = influence_scores[:n_f].argsort(descending=True)[:k]
    top_drop = clean - answer_logit(model, tcs, graph.tokens, graph.answer, graph.features[top])
    g = torch.Generator().manual_seed(seed)
    drops = [clean - answer_logit(model, tcs, graph.tokens, graph.answer,
                                  pool[torch.randperm(len(pool), generator=g)[:k]]) for _ in range(trials)]
    rnd = torch.tensor(drops)
    return {"nodes": k, "clean_logit": round(clean, 4), "top_drop": round(top_drop, 4),
            "random_drop_mean": round(float(rnd.mean()), 4), "random_drop_std": round(float(rnd.std()), 4)
            if trials > 1 else 0.0, "random_trials": trials, "active_features": len(pool)}
