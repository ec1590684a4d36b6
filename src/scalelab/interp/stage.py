"""The `interp` stage of `scalelab run`: an SAE on the largest ladder model, and the studies built around it.

It trains the configured SAE (`interp.sae`) on the middle residual stream of the largest model, evaluates it
(FVU, L0, dead/dense, CE loss recovered, KL), scores its features and the same layer's MLP neurons against the
world's concept labels on held-out text and fills the feature store; then, each under its own switch
(`interp.<study>.enabled`) and folder, the studies of `interp.studies`: toy models of superposition, linear
probes, universality across seeds and sizes, checked attribution graphs, steering and the hazard ablation, and
SAE scaling laws. On a real corpus (`corpus` other than the world) it samples the corpus into
`interp/text/`, and runs everything that needs no concept labels (no ground truth, probes or steering).
`summary.json["interp"]` holds the SAE's record with one key per study; `interp.report` renders it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from scalelab.config import to_dict
from scalelab.data.corpus import read_split
from scalelab.interp.concepts import score_sae_and_neurons
from scalelab.interp.features import compute_features
from scalelab.interp.report import section_interp
from scalelab.interp.run import train_sae_on_model
from scalelab.interp.saelens import load_sae
from scalelab.interp.studies import (
    Texts,
    circuits_step,
    probes_step,
    sae_scaling_step,
    start_second_seed,
    steering_step,
    superposition_step,
    universality_step,
    write_sample,
)
from scalelab.interp.text import pack_rows, read_records
from scalelab.layout import rung_name
from scalelab.model.lm import load_lm
from scalelab.stage import Context, Stage, Summary
from scalelab.world import all_concepts

SAMPLE_CHARS = {"train": 4_000_000, "val": 400_000}
"""characters of a real corpus sampled for the studies (~1M and ~100k tokens: more than any study reads)."""


def texts_for(ctx: Context) -> Texts:
    """The world's splits, or a sample of the real corpus written once into `interp/text/`."""
    if ctx.cfg.corpus == "world":
        w = ctx.layout.world
        return Texts(w / "train.jsonl", w / "val.jsonl", w)
    d = ctx.layout.interp_study("text")

    def build(out: Path) -> dict[str, Any]:
        for split in ("train", "val"):
            write_sample(read_split(ctx.cfg.corpus, split), out / f"{split}.jsonl", SAMPLE_CHARS[split])
        return {"corpus": ctx.cfg.corpus}

    ctx.step("interp:text", "interp_text", d, {"corpus": ctx.cfg.corpus, "chars": SAMPLE_CHARS}, [], build)
    return Texts(d / "train.jsonl", d / "val.jsonl", None)


def sae_step(ctx: Context, name: str, model_dir: Path, texts: Texts) -> dict[str, Any]:
    """The stage's SAE on `model_dir`: trained, evaluated, scored against the world when there is one, browsable."""
    icfg = ctx.cfg.interp

    def build(d: Path) -> dict[str, Any]:
        res = train_sae_on_model(model_dir, texts.train, d, icfg, progress=ctx.progress, device="cpu")
        shutil.rmtree(d / "cache", ignore_errors=True)  # reruns skip the stage; the cache is not needed again
        out = {**{k: v for k, v in res.items() if k != "history"}, "model_name": name, "sae_dir": str(d),
               "fvu_curve": [[h["tokens"], h["fvu"]] for h in res["history"]]}
        if texts.world:
            lm = load_lm(model_dir)
            sae, _ = load_sae(d)
            concepts = all_concepts()
            ids, labels = pack_rows(lm.tokenizer, read_records(texts.val), icfg.cache.seq_len, icfg.concept_rows,
                                    concepts)
            out["ground_truth"] = score_sae_and_neurons(lm.model, sae, res["site"], ids, labels, concepts)
        compute_features(d, texts.val, model_dir, n_rows=icfg.feature_rows, seq_len=icfg.cache.seq_len)
        return out

    core = {k: to_dict(getattr(icfg, k)) for k in ("cache", "sae", "train")}
    cfg = {"interp": {**core, "eval_rows": icfg.eval_rows, "concept_rows": icfg.concept_rows,
                      "feature_rows": icfg.feature_rows}, "model": name,
           "neuron_signs": "both"}  # neurons are scored on both signs since this key: older results rerun
    return ctx.step("interp", "sae", ctx.layout.interp(name), cfg, [ctx.layout.rung(name), texts.train.parent],
                    build)


def run_interp(ctx: Context, summary: Summary) -> dict[str, Any] | None:
    """The SAE on the largest rung and the enabled studies; `summary.json["interp"]`."""
    if not ctx.cfg.ladder:
        ctx.log("[interp] skipped: needs a ladder")
        return None
    with ctx.timed("interp") as clock:
        icfg = ctx.cfg.interp
        name = rung_name(max(ctx.cfg.ladder))
        model_dir = ctx.layout.model(name)
        texts = texts_for(ctx)
        seed_run = start_second_seed(ctx)
        threads = torch.get_num_threads()
        if seed_run is not None:  # one core trains the second seed, this process keeps the other
            torch.set_num_threads(1)
        try:
            out = dict(sae_step(ctx, name, model_dir, texts))
            sae_dir = Path(out["sae_dir"])
            if icfg.superposition.enabled:
                out["superposition"] = superposition_step(ctx)
            if icfg.probe.enabled and texts.world:
                out["probes"] = probes_step(ctx, model_dir, texts)
            if seed_run is not None:
                seed_run.result()
        finally:
            torch.set_num_threads(threads)
        if icfg.universality.enabled:
            out["universality"] = universality_step(ctx, sae_dir, model_dir, texts)
        if icfg.circuits.enabled:
            out["circuits"] = circuits_step(ctx, model_dir, texts)
        if icfg.steering.enabled and texts.world:
            out["steering"] = steering_step(ctx, model_dir, sae_dir, texts.world)
        if icfg.sae_scaling.enabled:
            out["sae_scaling"] = sae_scaling_step(ctx, model_dir, texts)
    out["interp_seconds"] = clock.seconds  # on a rerun that skipped everything: the time the work took
    return out


STAGE = Stage("interp", run_interp, section_interp)
