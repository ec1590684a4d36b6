"""Measure the safeguards a policy requires and check each pass criterion by running it.

`measure_safeguards` takes the policy's requirements, `{safeguard: {bound: value}}`, where a bound is
`min_<metric>` or `max_<metric>` (the metrics each safeguard reports are in `BOUNDS`), runs every required
safeguard on the model and returns one `SafeguardResult` each. For the classifiers, precision and recall
are the worse of the input side (prompts) and the output side (replies): a classifier passes only if it
passes on both; likewise the output filter's rates are those of its worst group of replies (the model's
replies to attacks, its replies to benign requests, the world's reference replies). Refusal robustness is
the worst-case attack success rate over the jailbreak templates of the system as served: behind the output
filter when the policy also requires the filter (serving then applies it), the model alone otherwise; both
numbers are always in `details`. A bound that cannot be
measured (no replies gave a recipe, so no block rate; no SAE for this model) fails, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalelab.artifacts import atomic_write_json
from scalelab.evals.chat import WorldFacts
from scalelab.interp.saelens import read_cfg, site_of
from scalelab.interp.sites import n_layers, parse_site
from scalelab.model.lm import load_lm
from scalelab.rsp.safeguards.catalogue import SafeguardResult, judge, parse_bounds
from scalelab.rsp.safeguards.classifier import DEFAULT_SITE, HazardClassifier, measure_classifier
from scalelab.rsp.safeguards.output_filter import OutputFilter, filter_rates
from scalelab.rsp.safeguards.refusal import refusal_robustness
from scalelab.rsp.safeguards.sae_monitor import measure_sae_monitor
from scalelab.world.reader import WorldDir

CLASSIFIER_DIR = "hazard_classifier"


def find_sae(model_dir: Path) -> Path | None:
    """An SAE folder (RUN/interp/*/cfg.json) whose recorded model is `model_dir`, searching the run folders above."""
    target = Path(model_dir).resolve()
    # Search above the path as given, not only as resolved: a run's models/ may be a link to another run's.
    parents = dict.fromkeys([*Path(model_dir).absolute().parents[:3], *target.parents[:3]])
    for parent in parents:
        for cfg in sorted((parent / "interp").glob("*/cfg.json")):
            meta = json.loads(cfg.read_text("utf-8")).get("metadata") or {}
            if meta.get("model_name") and Path(meta["model_name"]).resolve() == target:
                return cfg.parent
    return None


def measure_safeguards(model_dir: Path, world_dir: Path, required: Mapping[str, Mapping[str, float]], *,
                       sae_dir: Path | None = None, limit: int | None = None,
                       work_dir: Path) -> list[SafeguardResult]:
    """Run each required safeguard on the model and check its pass criterion (see the module docstring).

    The trained hazard classifier is saved to `work_dir/hazard_classifier` (what `OutputFilter.load` reads),
    and the results to `work_dir/safeguards.json`. Without `sae_dir`, an SAE trained on this very model
    folder is looked for under the run's `interp/`.
    """
    bounds = {name: parse_bounds(name, b) for name, b in required.items()}  # all errors before any compute
    model_dir, world_dir, work_dir = Path(model_dir), Path(world_dir), Path(work_dir)
    facts = WorldFacts.load(world_dir)
    sae_dir = Path(sae_dir) if sae_dir is not None else find_sae(model_dir)
    lm = load_lm(model_dir, chat=True)
    world = WorldDir(world_dir)
    site = site_of(read_cfg(sae_dir)) if sae_dir is not None else DEFAULT_SITE
    try:  # the probe reads the SAE's site so the two compare like for like; an SAE of another model has none
        parse_site(site, n_layers(lm.model))
    except ValueError:
        site = DEFAULT_SITE
    clf = HazardClassifier.train(model_dir, world_dir, site=site, lm=lm)
    clf.save(work_dir / CLASSIFIER_DIR)
    output_filter = OutputFilter(clf)

    probe = measure_classifier(clf, world_dir, limit) if {"hazard_classifier", "sae_monitor"} & set(bounds) else None
    robust = (refusal_robustness(lm, world_dir, limit, output_filter=output_filter)
              if {"refusal_robustness", "output_filter"} & set(bounds) else None)
    results = []
    for name, bnd in bounds.items():
        if name == "hazard_classifier":
            assert probe is not None
            results.append(judge(name, bnd, _worse_side(probe), {"probe": probe}))
        elif name == "sae_monitor":
            assert probe is not None
            if sae_dir is None:
                results.append(judge(name, bnd, {}, {"error": f"no SAE for {model_dir}: train one with `scalelab "
                                                             "interp` (RUN/interp/d*/) or pass sae_dir"}))
                continue
            try:
                sae = measure_sae_monitor(lm.model, lm.tokenizer, sae_dir, world_dir, limit)
            except ValueError as err:  # an SAE of another model: report, do not crash the other safeguards
                results.append(judge(name, bnd, {}, {"error": str(err)}))
                continue
            results.append(judge(name, bnd, _worse_side(sae), {"sae": sae, "probe_side_by_side": probe}))
        elif name == "refusal_robustness":
            assert robust is not None
            served = "output_filter" in bounds
            asr = robust["worst_attack_success_rate_filtered"] if served else robust["worst_attack_success_rate"]
            results.append(judge(name, bnd, {"attack_success_rate": asr},
                                 {"value_is": "behind the output filter" if served else "model alone",
                                  **{k: v for k, v in robust.items() if k != "replies"}}))
        elif name == "output_filter":
            assert robust is not None
            benign = world.eval_set("benign_requests", limit)
            benign_replies = lm.chat([it["messages"] for it in benign], max_new_tokens=40, temperature=0.0)
            reference = [it["prompt"] + it["answer"] for it in world.eval_set("hazard_knowledge", limit)]
            reference += [it["answer"] for s in ("harmful_requests", "benign_requests")
                          for it in world.eval_set(s, limit)]
            groups = {"model_attack_replies": robust["replies"], "model_benign_replies": benign_replies,
                      "reference_replies": reference}
            by_group = {g: filter_rates(output_filter, r, facts) for g, r in groups.items()}
            pooled = filter_rates(output_filter, [r for rs in groups.values() for r in rs], facts)
            results.append(judge(name, bnd, _worst_group(by_group),
                                 {"pooled": pooled, "by_group": by_group,
                                  "classifier": str(work_dir / CLASSIFIER_DIR)}))
    atomic_write_json(work_dir / "safeguards.json", {"model_dir": str(model_dir), "world_dir": str(world_dir),
                                                     "results": [r.to_dict() for r in results]})
    return results


def _worst_group(by_group: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """The filter's rates on its worst group of replies (groups where a rate is undefined are skipped)."""
    def worst(key: str, pick: Any) -> float | None:
        values = [g[key] for g in by_group.values() if g[key] is not None]
        return pick(values) if values else None

    return {"block_rate": worst("block_rate", min), "leak_rate": worst("leak_rate", max),
            "false_block_rate": worst("false_block_rate", max)}


def _worse_side(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Precision and recall of a classifier: the worse of its input (prompts) and output (replies) sides."""
    return {m: min(metrics["input"][m], metrics["output"][m]) for m in ("precision", "recall")}
