"""SAE scaling laws after Gao et al. 2024 ("Scaling and evaluating sparse autoencoders").

TopK SAEs of several widths n (latents), sparsities k and training lengths are trained on one cache of a site's
activations and scored on the same held-out rows by normalised MSE (= FVU: MSE over the variance of the
activations) and dead fraction (latents that never fire on the held-out rows). Three sweeps, each with the other
two settings fixed: n at (k, tokens), k at (n, tokens), tokens at (n, k). Each is fitted as a power law
NMSE ∝ x^(−α) by least squares on log–log axes, with a 95% t-interval on α from the fit's standard error (few
points, so the intervals are wide and say so). Gao et al. fit L(n, k) jointly with an irreducible term on runs
trained to convergence at far larger n; here each run has a fixed token budget, so the n sweep mixes
capacity with undertraining, which the tokens sweep measures. The scaling stage's fitting helpers sit on the same
floor as interp (`lint-imports` keeps siblings apart), so the log–log fit lives here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from scipy import stats as st

from scalelab.interp.cache import ActivationCache
from scalelab.interp.config import InterpConfig
from scalelab.interp.metrics import reconstruction_metrics
from scalelab.interp.sae import SAEConfig
from scalelab.interp.sites import n_layers, parse_site, read_site
from scalelab.interp.text import batched, pack_rows, read_records, rows_for_tokens
from scalelab.interp.train import TrainSAEConfig, train_sae
from scalelab.model.lm import LM


def power_law_fit(x: list[float], y: list[float], level: float = 0.95) -> dict[str, Any]:
    """y ≈ A·x^(−α): α, its `level` t-interval, log A and R² from least squares on (log x, log y)."""
    lx, ly = torch.tensor(x, dtype=torch.float64).log(), torch.tensor(y, dtype=torch.float64).log()
    n = len(lx)
    if n < 2 or float(lx.std()) == 0:
        return {"points": n}
    xm, ym = lx.mean(), ly.mean()
    sxx = float(((lx - xm) ** 2).sum())
    slope = float(((lx - xm) * (ly - ym)).sum()) / sxx
    intercept = float(ym) - slope * float(xm)
    resid = ly - (intercept + slope * lx)
    ss_tot = float(((ly - ym) ** 2).sum())
    out: dict[str, Any] = {"points": n, "alpha": round(-slope, 4), "log_A": round(intercept, 4),
                           "r2": round(1 - float((resid**2).sum()) / ss_tot, 4) if ss_tot > 0 else None}
    if n > 2:
        se = math.sqrt(float((resid**2).sum()) / (n - 2) / sxx)
        half = float(st.t.ppf(0.5 + level / 2, n - 2)) * se
        out["interval"] = [round(-slope - half, 4), round(-slope + half, 4)]
        out["level"] = level
    return out


def plan(d_in: int, icfg: InterpConfig) -> list[dict[str, int]]:
    """The runs of the three sweeps (a run shared by two sweeps appears once)."""
    c = icfg.sae_scaling
    runs = [{"d_sae": w * d_in, "k": c.k, "tokens": c.tokens} for w in c.widths]
    runs += [{"d_sae": c.width * d_in, "k": k, "tokens": c.tokens} for k in c.ks]
    runs += [{"d_sae": c.width * d_in, "k": c.k, "tokens": int(s * c.tokens)} for s in c.token_scales]
    runs.append({"d_sae": c.width * d_in, "k": c.k, "tokens": c.tokens})
    unique: list[dict[str, int]] = []
    for r in runs:
        if r not in unique and r["k"] < r["d_sae"]:
            unique.append(r)
    return unique


def run_sae_scaling(lm: LM, text: Path | str, out_dir: Path | str, icfg: InterpConfig, site: str | None = None,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train every run of the plan on one activation cache; their metrics, the three fits and dead vs width."""
    c = icfg.sae_scaling
    out = Path(out_dir)
    parsed = parse_site(site or icfg.cache.site, n_layers(lm.model))
    seq_len = icfg.cache.seq_len
    n_rows = rows_for_tokens(c.cache_tokens, seq_len) + c.eval_rows
    ids, _ = pack_rows(lm.tokenizer, read_records(text), seq_len, n_rows)
    eval_ids, train_ids = ids[:c.eval_rows], ids[c.eval_rows:]
    cache = ActivationCache.build(lm.model, parsed, batched(train_ids, 16), out / "cache",
                                  min(c.cache_tokens, len(train_ids) * (seq_len - 1)), icfg.cache.dtype,
                                  icfg.cache.memory_mb, progress=False)
    with torch.no_grad():
        eval_acts = torch.cat([read_site(lm.model, parsed, b)[:, 1:].reshape(-1, cache.d_in).float()
                               for b in batched(eval_ids, 16)])
    runs = []
    t0 = time.perf_counter()
    for r in plan(cache.d_in, icfg):
        sae_cfg = SAEConfig(arch="topk", d_in=cache.d_in, d_sae=r["d_sae"], k=r["k"],
                            dead_tokens=icfg.sae.dead_tokens)
        res = train_sae(cache, sae_cfg, TrainSAEConfig(tokens=r["tokens"], batch_size=c.batch_size,
                                                       progress=False, lazy_adam=icfg.train.lazy_adam,
                                                       dtype=icfg.train.dtype))
        m = reconstruction_metrics(res.sae, eval_acts)
        runs.append({**r, "nmse": round(m["fvu"], 5), "dead_frac": round(m["dead_frac"], 4), "l0": round(m["l0"], 2),
                     "seconds": round(res.seconds, 2), "dtype": res.precision.dtype})
        if log:
            log(f"[sae-scaling] n={r['d_sae']} k={r['k']} tokens={r['tokens']}: NMSE {m['fvu']:.4f}, "
                f"dead {m['dead_frac']:.1%}")

    def sweep(key: str, **fixed: int) -> list[dict[str, Any]]:
        rows = [r for r in runs if all(r[k] == v for k, v in fixed.items())]
        return sorted(rows, key=lambda r: r[key])

    by_width = sweep("d_sae", k=c.k, tokens=c.tokens)
    by_k = sweep("k", d_sae=c.width * cache.d_in, tokens=c.tokens)
    by_tokens = sweep("tokens", d_sae=c.width * cache.d_in, k=c.k)
    return {
        "site": parsed.name, "d_in": cache.d_in, "runs": runs, "eval_tokens": len(eval_acts),
        "fits": {"latents": power_law_fit([r["d_sae"] for r in by_width], [r["nmse"] for r in by_width]),
                 "k": power_law_fit([r["k"] for r in by_k], [r["nmse"] for r in by_k]),
                 "tokens": power_law_fit([r["tokens"] for r in by_tokens], [r["nmse"] for r in by_tokens])},
        "fixed": {"k": c.k, "width": c.width, "tokens": c.tokens},
        "dead_vs_width": [[r["d_sae"], r["dead_frac"]] for r in by_width],
        "seconds": round(time.perf_counter() - t0, 2),
    }
