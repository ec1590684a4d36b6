"""Per-layer transcoders: a sparse, wide replacement of each MLP, trained here (Dunefsky et al. 2024).

A transcoder reads what an MLP reads (`mlp_in`: the normalised residual) and predicts what it writes
(`mlp_out`) through k active latents: ŷ = W_decᵀ TopK(W_encᵀ(s·x) + b_enc) / s' + b_dec, with s and s' scaling
input and output to E‖·‖² = d (so one learning rate serves every layer). Replacing every MLP by its transcoder
is the "replacement model" of Anthropic's 2025 circuit tracing: its latents are the features an attribution
graph connects. Saved per layer as `layer_{L}.safetensors` (W_enc, b_enc, W_dec, b_dec with the scales folded
in, circuit-tracer's names) beside `transcoders.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from scalelab.artifacts import atomic_write_json
from scalelab.errors import InputError, MissingInput
from scalelab.interp.config import CircuitsConfig
from scalelab.interp.sites import Site, n_layers, read_sites

INDEX = "transcoders.json"


class Transcoder(nn.Module):
    """TopK transcoder from `d_in` to `d_out` through `d_tc` latents, reading and writing raw activations."""

    def __init__(self, d_in: int, d_out: int, d_tc: int, k: int) -> None:
        super().__init__()
        self.k = k
        w = torch.randn(d_tc, d_in) / d_in**0.5
        self.W_enc = nn.Parameter(w.T.clone())  # (d_in, d_tc)
        self.b_enc = nn.Parameter(torch.zeros(d_tc))
        self.W_dec = nn.Parameter(torch.randn(d_tc, d_out) / d_tc**0.5)  # (d_tc, d_out)
        self.b_dec = nn.Parameter(torch.zeros(d_out))

    @property
    def d_tc(self) -> int:
        return self.W_enc.shape[1]

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.pre_acts(x)
        vals, idx = pre.topk(min(self.k, pre.shape[-1]), dim=-1)
        return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@dataclass
class LayerPairs:
    """(MLP input, MLP output) rows of one layer, positions ≥ 1."""

    x: torch.Tensor
    y: torch.Tensor


@torch.no_grad()
def mlp_pairs(model: nn.Module, layer: int, ids: torch.Tensor, max_rows: int, batch_size: int = 16) -> LayerPairs:
    """Read one layer's MLP input and output on token rows (the forward stops after that layer)."""
    sites = [Site("mlp_in", layer), Site("mlp_out", layer)]
    xs, ys, n = [], [], 0
    for start in range(0, len(ids), batch_size):
        acts = read_sites(model, sites, ids[start:start + batch_size])
        xs.append(acts[sites[0].name][:, 1:].reshape(-1, acts[sites[0].name].shape[-1]).float())
        ys.append(acts[sites[1].name][:, 1:].reshape(-1, acts[sites[1].name].shape[-1]).float())
        n += len(xs[-1])
        if n >= max_rows:
            break
    return LayerPairs(torch.cat(xs)[:max_rows], torch.cat(ys)[:max_rows])


def fvu(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum().clamp_min(1e-12))


def train_transcoder(pairs: LayerPairs, cfg: CircuitsConfig, held_out: float = 0.1) -> tuple[Transcoder, dict]:
    """Fit one layer's transcoder with Adam on MSE; returns it (scales folded in) and its held-out FVU."""
    n_eval = max(1, int(len(pairs.x) * held_out))
    x, y = pairs.x[n_eval:], pairs.y[n_eval:]
    if len(x) < cfg.batch_size:
        raise InputError(f"{len(x)} training rows for a transcoder; need at least one batch of {cfg.batch_size} "
                         "(raise interp.circuits.tokens or give more text)")
    sx = float((x.shape[1] / x.pow(2).sum(1).mean()).sqrt())
    sy = float((y.shape[1] / y.pow(2).sum(1).mean().clamp_min(1e-12)).sqrt())
    torch.manual_seed(cfg.seed)
    tc = Transcoder(x.shape[1], y.shape[1], cfg.expansion_factor * x.shape[1], cfg.k)
    with torch.no_grad():
        tc.b_dec.copy_(y.mean(0) * sy)
    opt = torch.optim.Adam(tc.parameters(), lr=cfg.lr)
    steps = max(1, cfg.tokens // cfg.batch_size)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(len(x), (cfg.batch_size,), generator=g)
        for group in opt.param_groups:  # linear decay over the last 20% of steps
            group["lr"] = cfg.lr * min(1.0, (steps - step) / max(1, 0.2 * steps))
        loss = (tc(x[idx] * sx) - y[idx] * sy).pow(2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():  # fold the scales in: the saved transcoder reads and writes raw activations
        tc.W_enc.mul_(sx)
        tc.W_dec.div_(sy)
        tc.b_dec.div_(sy)
        f = tc.encode(pairs.x[:n_eval])
        stats = {"fvu": round(fvu(tc.decode(f), pairs.y[:n_eval]), 4),
                 "l0": round(float((f > 0).sum(1).float().mean()), 2),
                 "dead_frac": round(float(((f > 0).sum(0) == 0).float().mean()), 4), "train_rows": len(x),
                 "eval_rows": n_eval, "seconds": round(time.perf_counter() - t0, 2)}
    return tc.eval(), stats


def train_transcoders(model: nn.Module, ids: torch.Tensor, out_dir: Path | str, cfg: CircuitsConfig,
                      log: Any = None) -> dict[str, Any]:
    """One transcoder per layer of `model`, trained on `ids`, saved in `out_dir`; returns the index."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layers = []
    for layer in range(n_layers(model)):
        tc, stats = train_transcoder(mlp_pairs(model, layer, ids, cfg.tokens), cfg)
        save_file({k: v.detach().contiguous() for k, v in tc.state_dict().items()},
                  str(out / f"layer_{layer}.safetensors"))
        layers.append({"layer": layer, **stats})
        if log:
            log(f"[transcoder {layer}] FVU {stats['fvu']:.3f}, L0 {stats['l0']}, dead {stats['dead_frac']:.1%}")
    index = {"k": cfg.k, "expansion_factor": cfg.expansion_factor,
             "feature_input_hook": "mlp_in", "feature_output_hook": "mlp_out", "layers": layers}
    atomic_write_json(out / INDEX, index)
    return index


def load_transcoders(tc_dir: Path | str) -> list[Transcoder]:
    """The per-layer transcoders saved by `train_transcoders`, in layer order."""
    path = Path(tc_dir)
    if not (path / INDEX).is_file():
        raise MissingInput(f"{path / INDEX} not found; train transcoders with `scalelab interp circuit --model M` "
                           "(they are saved beside the graph)")
    index = json.loads((path / INDEX).read_text("utf-8"))
    out = []
    for row in index["layers"]:
        state = load_file(str(path / f"layer_{row['layer']}.safetensors"))
        tc = Transcoder(state["W_enc"].shape[0], state["W_dec"].shape[1], state["W_enc"].shape[1], int(index["k"]))
        tc.load_state_dict(state)
        out.append(tc.eval())
    return out
