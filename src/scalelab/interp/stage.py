"""The `interp` stage of `scalelab run`: an SAE on the largest ladder model, scored against the world.

It trains the configured SAE (`interp.sae`: TopK, k and expansion factor) on the middle residual stream of
the largest model, evaluates it (FVU, L0, dead/dense, CE loss recovered, KL), scores its features and
the same layer's MLP neurons against the world's concept labels on held-out text, fills the feature
store, and returns `summary.json["interp"]`; `section_interp` renders it in the report.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import matplotlib

from scalelab.config import to_dict
from scalelab.interp.concepts import score_sae_and_neurons
from scalelab.interp.features import compute_features
from scalelab.interp.run import train_sae_on_model
from scalelab.interp.saelens import load_sae
from scalelab.interp.text import pack_rows, read_records
from scalelab.layout import rung_name
from scalelab.model.lm import load_lm
from scalelab.report.render import table
from scalelab.stage import Context, Stage, Summary
from scalelab.world import all_concepts

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def run_interp(ctx: Context, summary: Summary) -> dict[str, Any] | None:
    """The SAE on the largest rung, scored against the world; `summary.json["interp"]`."""
    if ctx.cfg.corpus != "world" or not ctx.cfg.ladder:
        ctx.log("[interp] skipped: needs the world corpus (its concept labels) and a ladder")
        return None
    name = rung_name(max(ctx.cfg.ladder))
    model_dir = ctx.layout.model(name)
    world = ctx.layout.world
    icfg = ctx.cfg.interp

    def build(d: Path) -> dict[str, Any]:
        res = train_sae_on_model(model_dir, world / "train.jsonl", d, icfg, progress=ctx.progress, device="cpu")
        shutil.rmtree(d / "cache", ignore_errors=True)  # reruns skip the stage; the cache is not needed again
        lm = load_lm(model_dir)
        model, tok = lm.model, lm.tokenizer
        sae, _ = load_sae(d)
        concepts = all_concepts()
        ids, labels = pack_rows(tok, read_records(world / "val.jsonl"), icfg.cache.seq_len, icfg.concept_rows,
                                concepts)
        truth = score_sae_and_neurons(model, sae, res["site"], ids, labels, concepts)
        compute_features(d, world / "val.jsonl", model_dir, n_rows=icfg.feature_rows, seq_len=icfg.cache.seq_len)
        return {**{k: v for k, v in res.items() if k != "history"}, "model_name": name, "sae_dir": str(d),
                "ground_truth": truth, "fvu_curve": [[h["tokens"], h["fvu"]] for h in res["history"]]}

    cfg = {"interp": to_dict(icfg), "model": name}
    return ctx.step("interp", "sae", ctx.layout.interp(name), cfg, [ctx.layout.rung(name), world], build)


def section_interp(summary: Summary, out: Path) -> str:
    """The report's section: the SAE's metrics and the ground-truth comparison of features and neurons."""
    it = summary.get("interp")
    if not it:
        return ""
    ev = it["eval"]
    gt = it["ground_truth"]
    f, n = gt["features"], gt["neurons"]
    lines = [
        "## Interpretability: a sparse autoencoder", "",
        f"A {it['arch']} SAE (k = {it['k']}, {it['d_sae']} features = {it['d_sae'] // it['d_in']}× d_model) on "
        f"`{it['site']}` of {it['model_name']}, trained on {it['train_tokens']:,} activations "
        f"({it['activations_per_second']:,} activations/s). Metrics on held-out text, positions {ev['positions']}.", "",
        table(["FVU", "L0", "dead", "dense", "CE clean", "CE with SAE", "CE zero-ablated", "CE recovered", "KL"],
              [[ev["fvu"], ev["l0"], ev["dead_frac"], ev["dense_frac"], ev["ce_clean"], ev["ce_sae"], ev["ce_zero"],
                ev["ce_recovered"], ev["kl_sae"]]]), "",
        "### Features vs. neurons, against the world's ground truth", "",
        f"Each of {gt['tokens']:,} held-out tokens carries the concept it expresses. A unit is *precise* when ≥ "
        f"{f['thresholds']['precise_at']:.0%} of the tokens it fires on carry one concept (units firing ≥ "
        f"{f['thresholds']['min_fires']} times); a concept is *captured* when some unit reaches F1 ≥ "
        f"{f['thresholds']['captured_f1']}. Neurons (`{n['site']}`) fire above their own quantile at the SAE's "
        f"mean feature density ({n['firing_density']:.4f}).", "",
        table(["units", "count", "scored", "precise", "precise fraction", "mean best F1", "concepts captured"],
              [["SAE features", f["units"], f["units_scored"], f["precise_units"], f["precise_frac"],
                f["mean_best_f1"], f"{f['captured_concepts']}/{f['concepts_present']}"],
               ["MLP neurons", n["units"], n["units_scored"], n["precise_units"], n["precise_frac"],
                n["mean_best_f1"], f"{n['captured_concepts']}/{n['concepts_present']}"],
               *_matched_rows(gt)]), "",
        "*Matched rule*: every unit, feature or neuron, is on where its activation is positive and above its own "
        f"top-d quantile, with d ∈ {{{_densities(gt)}}} picked per unit for its best F1.", "",
        "Concepts no SAE feature captures: " + (", ".join(f"`{c}`" for c in f["uncaptured_concepts"]) or "none") + ".",
        "", "Most precise features:", "",
        table(["feature", "concept", "precision", "recall"],
              [[t["feature"], t["concept"], t["precision"], t["recall"]] for t in gt["top_features"]]),
        "", f"Feature store: `{Path(it['sae_dir']).name}/features.sqlite` (`scalelab interp features`).",
    ]
    png = _plot(it, out)
    if png:
        lines += ["", f"![SAE training]({png})"]
    return "\n".join(lines)


def _densities(gt: dict[str, Any]) -> str:
    return ", ".join(f"{d:g}" for d in gt.get("matched", {}).get("features", {}).get("densities", []))


def _matched_rows(gt: dict[str, Any]) -> list[list[Any]]:
    m = gt.get("matched")
    if not m:
        return []
    return [[label, u["units"], u["units_scored"], u["precise_units"], u["precise_frac"], u["mean_best_f1"],
             f"{u['captured_concepts']}/{u['concepts_present']}"]
            for label, u in (("SAE features, matched rule", m["features"]),
                             ("MLP neurons, matched rule", m["neurons"]))]


def _plot(it: dict[str, Any], out: Path) -> str | None:
    curve = it.get("fvu_curve") or []
    if not curve:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot([c[0] for c in curve], [c[1] for c in curve])
    a.set(xlabel="training activations", ylabel="FVU (train batch)", yscale="log", title="SAE training")
    b.hist(it["ground_truth"]["best_precision"]["features"], bins=20)
    b.set(xlabel="best-concept precision", ylabel="features", title="feature precision")
    fig.tight_layout()
    name = "interp_sae.png"
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


STAGE = Stage("interp", run_interp, section_interp)
