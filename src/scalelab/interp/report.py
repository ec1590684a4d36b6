"""The `interp` stage's report: the SAE and its ground truth, then one subsection per study, with figures.

`section_interp(summary, out)` renders `summary.json["interp"]`; every study's subsection is left out when its
record is absent (a disabled study, or one that needs the world's labels on real text).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

from scalelab.interp import plots
from scalelab.interp.superposition import section_superposition
from scalelab.report.render import fmt, table

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def section_interp(summary: dict[str, Any], out: Path) -> str:
    it = summary.get("interp")
    if not it:
        return ""
    parts = [_sae_section(it, out)]
    studies: list[tuple[str, Callable[[dict[str, Any], Path], str]]] = [
        ("superposition", _superposition), ("probes", _probes), ("universality", _universality),
        ("circuits", _circuits), ("steering", _steering), ("sae_scaling", _sae_scaling)]
    parts += [render(it[key], out) for key, render in studies if it.get(key)]
    if it.get("steering") and it.get("probes"):
        parts.append(_probe_monitor(it["probes"]))
    return "\n\n".join(p for p in parts if p)


def _sae_section(it: dict[str, Any], out: Path) -> str:
    ev = it["eval"]
    lines = [
        "## Interpretability: a sparse autoencoder", "",
        f"A {it['arch']} SAE (k = {it['k']}, {it['d_sae']} features = {it['d_sae'] // it['d_in']}× d_model) on "
        f"`{it['site']}` of {it['model_name']}, trained on {it['train_tokens']:,} activations "
        f"({it['activations_per_second']:,} activations/s). Metrics on held-out text, positions {ev['positions']}.", "",
        table(["FVU", "L0", "dead", "dense", "CE clean", "CE with SAE", "CE zero-ablated", "CE recovered", "KL"],
              [[ev["fvu"], ev["l0"], ev["dead_frac"], ev["dense_frac"], ev["ce_clean"], ev["ce_sae"], ev["ce_zero"],
                ev["ce_recovered"], ev["kl_sae"]]])]
    gt = it.get("ground_truth")
    if gt:
        lines += ["", *_ground_truth_lines(gt)]
    lines += ["", f"Feature store: `{Path(it['sae_dir']).name}/features.sqlite` (`scalelab interp features`)."]
    png = _training_plot(it, out)
    if png:
        lines += ["", f"![SAE training]({png})"]
    return "\n".join(lines)


def _ground_truth_lines(gt: dict[str, Any]) -> list[str]:
    f, n = gt["features"], gt["neurons"]
    return [
        "### Features vs. neurons, against the world's ground truth", "",
        f"Each of {gt['tokens']:,} held-out tokens carries the concept it expresses. A unit is *precise* when ≥ "
        f"{f['thresholds']['precise_at']:.0%} of the tokens it fires on carry one concept (units firing ≥ "
        f"{f['thresholds']['min_fires']} times); a concept is *captured* when some unit reaches F1 ≥ "
        f"{f['thresholds']['captured_f1']}. Neurons (`{n['site']}`) are scored on both signs (a SwiGLU unit's sign is "
        f"arbitrary; each keeps its better side, {n.get('negative_side_units', 0)} the negative one) and fire above "
        f"their own quantile at the SAE's mean feature density ({n['firing_density']:.4f}).", "",
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
              [[t["feature"], t["concept"], t["precision"], t["recall"]] for t in gt["top_features"]])]


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


def _training_plot(it: dict[str, Any], out: Path) -> str | None:
    curve = it.get("fvu_curve") or []
    if not curve:
        return None
    gt = it.get("ground_truth")
    fig, axes = plt.subplots(1, 2 if gt else 1, figsize=(9 if gt else 4.5, 3.2), squeeze=False)
    a = axes[0][0]
    a.plot([c[0] for c in curve], [c[1] for c in curve])
    a.set(xlabel="training activations", ylabel="FVU (train batch)", yscale="log", title="SAE training")
    if gt:
        b = axes[0][1]
        b.hist(gt["best_precision"]["features"], bins=20)
        b.set(xlabel="best-concept precision", ylabel="features", title="feature precision")
    fig.tight_layout()
    name = "interp_sae.png"
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


def _superposition(sp: dict[str, Any], out: Path) -> str:
    path = Path(sp.get("results_json", ""))
    if not path.is_file():
        return ""
    return section_superposition(json.loads(path.read_text("utf-8")), out)


def _probes(pr: dict[str, Any], out: Path) -> str:
    rows = []
    for g, r in pr["groups"].items():
        if "layers" not in r:
            rows.append([g, "–", "–", "–", "–", "–", r.get("skipped", "")])
            continue
        best = next(row for row in r["layers"] if row["layer"] == r["best_layer"])
        rows.append([g, len(r["classes"]), r["chance"], r["token_baseline"], best["layer"], best["accuracy"],
                     f"control {best['control']}, selectivity {best['selectivity']}"])
    lines = ["## Interpretability: linear probes per layer", "",
             f"A class-balanced logistic regression per layer's residual stream (-1: the embeddings) predicts each "
             f"token's concept within a group; {pr['metric']}, {pr['test_rows']} of {pr['rows']} sequences held "
             f"out. Control: {pr['control']}. Token baseline: {pr['token_baseline']}.", "",
             table(["group", "classes", "chance", "token baseline", "best layer", "accuracy", "at that layer"], rows)]
    png = plots.plot_probes(pr, out / "interp_probes.png")
    return "\n".join(lines + (["", f"![probes]({png})"] if png else []))


def _universality(un: dict[str, Any], out: Path) -> str:
    rows = []
    for pair, label in (("seeds", f"{un['a']} vs {un['b_seed']} (seeds)"), ("sizes", f"{un['a']} vs {un['b_size']}"
                                                                                     " (sizes)")):
        if pair not in un:
            continue
        for unit in ("features", "neurons"):
            u = un[pair][unit]
            lab = u.get("labels") or {}
            rows.append([label, unit, f"{u.get('units', 0)}/{u['of']}", u.get("median"), u.get("frac_above_0.5"),
                         u.get("frac_above_0.7"), lab.get("agree"), lab.get("chance")])
    lines = ["## Interpretability: universality", "",
             "Each unit of the first model is matched to its most correlated unit of the second over the same "
             f"{un['seeds']['tokens']:,} held-out tokens (SAE features by correlation; MLP neurons by |correlation|, "
             "their sign being arbitrary). Concept agreement: the share of matched pairs whose best world concepts "
             "agree, beside the share a random pairing gives.", "",
             table(["pair", "units", "live / all", "median best r", "r > 0.5", "r > 0.7", "concepts agree",
                    "by chance"], rows)]
    png = plots.plot_universality(un, out / "interp_universality.png")
    return "\n".join(lines + (["", f"![universality]({png})"] if png else []))


def _circuits(ci: dict[str, Any], out: Path) -> str:
    tc = ci["transcoders"]
    rows = [[g["slug"], f"`{(g['prompt'] + g.get('forced', ''))[-60:]}` → `{g['answer']}`", g["answer_probability"],
             g["active_features"],
             g["nodes_kept"], g["edges_kept"], g["error_share_of_logit"], g["ablation"].get("top_drop"),
             f"{g['ablation'].get('random_drop_mean')} ± {g['ablation'].get('random_drop_std')}"]
            for g in ci["graphs"]]
    lines = ["## Interpretability: circuits (transcoders and attribution graphs)", "",
             f"One TopK transcoder per layer (k = {tc['k']}, {tc['expansion_factor']}× d_model; held-out FVU "
             + ", ".join(f"{row['fvu']:.3f}" for row in tc["layers"]) + ") replaces each MLP; a prompt's graph holds "
             "the direct effects between active features, error nodes and token embeddings through frozen "
             "attention patterns and norm scales, pruned to the nodes carrying most of the answer logit's influence. "
             "Check: ablating the graph's most influential feature nodes in the real model vs as many random active "
             f"ones. Graphs in circuit-tracer's JSON format: `{Path(ci['graphs_dir']).name}/`.", "",
             table(["graph", "prompt → answer", "p(answer)", "active features", "nodes", "edges",
                    "error share of logit", "logit drop, top nodes", "logit drop, random"], rows)]
    png = plots.plot_circuits(ci, out / "interp_circuits.png")
    return "\n".join(lines + (["", f"![ablation check]({png})"] if png else []))


def _steering(st: dict[str, Any], out: Path) -> str:
    scales = sorted({s for row in st.get("concepts", {}).values() for s in row["scales"]}, key=float)
    rows = [[c, row["feature"], row["baseline_rate"], *[row["scales"][s]["rate"] for s in scales],
             *[row["scales"][s]["loss_cost"] for s in scales]] for c, row in st.get("concepts", {}).items()]
    lines = ["## Interpretability: steering", "",
             f"Each concept's most precise SAE feature is clamped to scale × its max activation at every position "
             f"while the model continues {st['prompts']} openings of held-out documents (sampled, T = 1, one seed per "
             "prompt); a continuation expresses the concept when it names something of it in the world's vocabulary. "
             f"Loss cost: held-out cross-entropy with the clamp on minus clean ({st['baseline_loss']} nats).", "",
             table(["concept", "feature", "baseline", *[f"rate @{s}×" for s in scales],
                    *[f"Δloss @{s}×" for s in scales]], rows)]
    hz = st.get("hazard") or {}
    if hz.get("ablated"):
        cols = ("hazard_knowledge", "harmful_compliance", "fact_recall")
        lines += ["", f"Hazard features ({len(hz['features'])}: the most precise for `hazard_step`/`reagent`) "
                  "ablated at every position, against as many random live features:", "",
                  table(["model", *cols], [["clean", *[hz["clean"][c] for c in cols]],
                                           ["hazard features ablated", *[hz["ablated"][c] for c in cols]],
                                           ["random features ablated", *[hz["random_ablated"][c] for c in cols]]])]
    png = plots.plot_steering(st, out / "interp_steering.png")
    return "\n".join(lines + (["", f"![steering]({png})"] if png else []))


def _probe_monitor(pr: dict[str, Any]) -> str:
    """The hazard-step probe beside the ablation: detecting the concept vs removing it (the RSP's probe monitor,
    `rsp.safeguards`, is the same kind of linear probe on pooled text, measured in its own report)."""
    hz = pr["groups"].get("hazard_step") or {}
    if "layers" not in hz:
        return ""
    return (f"Beside it, the linear probe for `hazard_step` tokens (the monitor's kind of detector) reaches balanced "
            f"accuracy {hz['best_accuracy']} at layer {hz['best_layer']} (shuffled-label control "
            f"{next(r['control'] for r in hz['layers'] if r['layer'] == hz['best_layer'])}): detecting the concept, "
            "set beside removing it above.")


def _sae_scaling(ss: dict[str, Any], out: Path) -> str:
    fits = ss["fits"]
    rows = [[name, f.get("points"), f.get("alpha"), "–" if "interval" not in f else
             f"[{fmt(f['interval'][0])}, {fmt(f['interval'][1])}]", f.get("r2")] for name, f in fits.items()]
    fx = ss["fixed"]
    lines = ["## Interpretability: SAE scaling laws", "",
             f"TopK SAEs on `{ss['site']}` (d_in = {ss['d_in']}) scored by normalised MSE on {ss['eval_tokens']:,} "
             f"held-out activations. Sweeps: latents at k = {fx['k']}, {fx['tokens']:,} tokens; k at "
             f"{fx['width']}× d_in; tokens at both. Fit: NMSE ∝ x^(−α) on log–log axes, 95% t-interval.", "",
             table(["sweep", "points", "α", "95% interval", "R²"], rows), "",
             "Dead fraction vs latents: " + ", ".join(f"{n}: {d:.1%}" for n, d in ss["dead_vs_width"]) + "."]
    png = plots.plot_sae_scaling(ss, out / "interp_sae_scaling.png")
    return "\n".join(lines + (["", f"![SAE scaling]({png})"] if png else []))
