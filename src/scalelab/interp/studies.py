"""The `interp` stage's studies beside its SAE, each one skip-if-done step (`Context.step`) in its own folder.

Superposition (toy models), probes (the world's concepts per layer), universality (a second seed of one rung
and SAEs on both), circuits (transcoders and checked attribution graphs), steering (concept clamps and the hazard
ablation) and SAE scaling laws. Each returns its `summary.json["interp"][<study>]` record; those that need the
world's labels (probes, concept steering, the hazard ablation, concept agreement) are skipped on real text.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from scalelab.artifacts import atomic_write_json
from scalelab.config import to_dict
from scalelab.interp.circuits.run import CircuitPrompt, run_circuits, world_prompts
from scalelab.interp.config import InterpConfig
from scalelab.interp.probes import run_probes
from scalelab.interp.run import train_sae_on_model
from scalelab.interp.sae_scaling import run_sae_scaling
from scalelab.interp.saelens import load_sae, site_of
from scalelab.interp.steering_eval import (
    concept_patterns,
    concept_rates,
    feature_concepts,
    hazard_ablation,
    hazard_features,
    openings,
    pick_features,
)
from scalelab.interp.superposition import run_superposition, superposition_summary
from scalelab.interp.text import pack_rows, read_records
from scalelab.interp.universality import compare, unit_activations
from scalelab.layout import RunLayout, rung_name
from scalelab.model.device import pick_device
from scalelab.model.lm import load_lm
from scalelab.registry import Registry
from scalelab.stage import Context
from scalelab.train.loop import pretrain
from scalelab.world import all_concepts


@dataclasses.dataclass
class Texts:
    """What the studies read: training text, held-out text, and the world (None on real text)."""

    train: Path
    val: Path
    world: Path | None


def write_sample(docs: Iterable[str], path: Path, max_chars: int) -> Path:
    """The first documents of a real corpus, up to `max_chars`, as the `.jsonl` the interp readers take."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps({"text": doc}) + "\n")
            n += len(doc)
            if n >= max_chars:
                break
    return path


def val_rows(lm: Any, texts: Texts, seq_len: int, rows: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Held-out token rows, with concept labels when the text is the world's."""
    concepts = all_concepts() if texts.world else None
    ids, labels = pack_rows(lm.tokenizer, read_records(texts.val), seq_len, rows, concepts)
    return ids, labels if texts.world else None


def superposition_step(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg.interp.superposition

    def build(d: Path) -> dict[str, Any]:
        res = run_superposition(d, cfg, progress=False)
        return {**superposition_summary(res), "figures": {k: str(d / v) for k, v in res["figures"].items()},
                "results_json": str(d / "results.json")}

    return ctx.step("interp:superposition", "interp_superposition", ctx.layout.interp_study("superposition"),
                    to_dict(cfg), [], build)


def probes_step(ctx: Context, model_dir: Path, texts: Texts) -> dict[str, Any]:
    icfg: InterpConfig = ctx.cfg.interp

    def build(d: Path) -> dict[str, Any]:
        lm = load_lm(model_dir)
        ids, labels = val_rows(lm, texts, icfg.cache.seq_len, icfg.probe.rows)
        res = run_probes(lm.model, ids, labels, all_concepts(), icfg.probe)
        atomic_write_json(d / "probes.json", res)
        return {**res, "model": str(model_dir)}

    cfg = {"probe": to_dict(icfg.probe), "seq_len": icfg.cache.seq_len, "model": str(model_dir)}
    return ctx.step("interp:probes", "interp_probes", ctx.layout.interp_study("probes"), cfg,
                    [model_dir, ctx.layout.world], build)


def second_seed(ctx: Context, depth: int, seed: int) -> Path:
    """Pretrain rung `depth` again with `train.seed = seed` (same data, size and budget); its HF folder."""
    name = rung_name(depth)
    model_cfg = dataclasses.replace(ctx.cfg.model, depth=depth)
    train_cfg = dataclasses.replace(ctx.cfg.train, seed=seed, progress=False)
    out = ctx.layout.interp_seed(name, seed)

    def build(d: Path) -> dict[str, Any]:
        return pretrain(model_cfg, train_cfg, ctx.layout.shards, d, tokenizer_dir=ctx.layout.tokenizer, resume=True,
                        name=f"{name}-seed{seed}")

    cfg = {"model": to_dict(model_cfg), "train": {k: v for k, v in to_dict(train_cfg).items()
                                                  if k not in ("progress", "log_every")}}
    ctx.step(f"pretrain:{name}-seed{seed}", "model", out, cfg, [ctx.layout.shards, ctx.layout.tokenizer], build)
    return out / "final"


def _second_seed_worker(cfg: Any, root: str, registry: str, depth: int, seed: int) -> None:
    torch.set_num_threads(1)
    ctx = Context(cfg=cfg, layout=RunLayout(Path(root)), registry=Registry(Path(registry)),
                  log=lambda msg: print(msg, flush=True))
    second_seed(ctx, depth, seed)


def start_second_seed(ctx: Context) -> Future | None:
    """Pretrain the universality rung's second seed in a spawned process with one torch thread, so it trains
    while the stage's other studies run on the other core (these models are too small to use two cores each);
    None on an accelerator or a single core, where `universality_step` trains it in line."""
    ucfg = ctx.cfg.interp.universality
    if not ucfg.enabled or (os.cpu_count() or 1) < 2 or pick_device(ctx.cfg.train.device).type != "cpu":
        return None
    pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
    future = pool.submit(_second_seed_worker, ctx.cfg, str(ctx.layout.root), str(ctx.registry.path),
                         ucfg.depth or min(ctx.cfg.ladder), ucfg.seed)
    pool.shutdown(wait=False)
    return future


def sae_for(ctx: Context, model_dir: Path, texts: Texts, out: Path, label: str) -> Path:
    """The stage's SAE config trained on another model (its metrics only: no feature store)."""
    icfg = ctx.cfg.interp
    sae_cfg = {k: to_dict(getattr(icfg, k)) for k in ("cache", "sae", "train")}

    def build(d: Path) -> dict[str, Any]:
        res = train_sae_on_model(model_dir, texts.train, d, icfg, progress=False)
        shutil.rmtree(d / "cache", ignore_errors=True)
        return {k: v for k, v in res.items() if k != "history"}

    ctx.step(f"interp:sae-{label}", "sae", out, {**sae_cfg, "eval_rows": icfg.eval_rows}, [model_dir], build)
    return out


def universality_step(ctx: Context, main_sae: Path, main_model: Path, texts: Texts) -> dict[str, Any]:
    """SAEs on the smallest rung and its second seed (same size), and on the largest rung (two sizes), matched."""
    icfg: InterpConfig = ctx.cfg.interp
    ucfg = icfg.universality
    depth = ucfg.depth or min(ctx.cfg.ladder)
    name = rung_name(depth)
    study = ctx.layout.interp_study("universality")
    seed_model = second_seed(ctx, depth, ucfg.seed)
    base_model = ctx.layout.model(name)
    sae_base = sae_for(ctx, base_model, texts, study / f"sae-{name}", name)
    sae_seed = sae_for(ctx, seed_model, texts, study / f"sae-{name}-seed{ucfg.seed}", f"{name}-seed{ucfg.seed}")

    def build(d: Path) -> dict[str, Any]:
        lm = load_lm(base_model)
        ids, labels = val_rows(lm, texts, icfg.cache.seq_len, ucfg.rows)
        concepts = all_concepts() if labels is not None else None

        def units(model_dir: Path, sae_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
            sae, cfg = load_sae(sae_dir)
            return unit_activations(load_lm(model_dir).model, sae, site_of(cfg), ids)

        base = units(base_model, sae_base)
        pairs = {"seeds": compare(base, units(seed_model, sae_seed), labels, concepts, ucfg.min_fires)}
        if main_model.resolve() != base_model.resolve():
            pairs["sizes"] = compare(base, units(main_model, main_sae), labels, concepts, ucfg.min_fires)
        atomic_write_json(d / "universality.json", pairs)
        return {"a": name, "b_seed": f"{name}-seed{ucfg.seed}", "b_size": main_model.parent.name,
                **{k: {kk: v[kk] for kk in ("features", "neurons", "tokens")} for k, v in pairs.items()},
                "best_corr": {k: {"features": v["feature_best_corr"], "neurons": v["neuron_best_corr"]}
                              for k, v in pairs.items()}}

    cfg = {"universality": to_dict(ucfg), "seq_len": icfg.cache.seq_len}
    return ctx.step("interp:universality", "interp_universality", study, cfg,
                    [sae_base, sae_seed, main_sae, *([texts.world] if texts.world else [])], build)


def circuits_step(ctx: Context, model_dir: Path, texts: Texts) -> dict[str, Any]:
    icfg: InterpConfig = ctx.cfg.interp
    ccfg = icfg.circuits

    def build(d: Path) -> dict[str, Any]:
        lm = load_lm(model_dir)
        if texts.world:
            prompts = world_prompts(texts.world, ccfg.prompts)
        else:  # no labels: the model's own next token after an opening of held-out text
            docs = [r["text"] for _, r in zip(range(ccfg.prompts), read_records(texts.val), strict=False)]
            prompts = [CircuitPrompt("text", " ".join(doc.split()[:12]), None) for doc in docs]
        res = run_circuits(lm, texts.train, d, ccfg, prompts, seq_len=icfg.cache.seq_len, log=ctx.log)
        return {"model": str(model_dir), **res}

    cfg = {"circuits": to_dict(ccfg), "seq_len": icfg.cache.seq_len, "model": str(model_dir)}
    return ctx.step("interp:circuits", "interp_circuits", ctx.layout.interp_study("circuits"), cfg,
                    [model_dir, texts.train.parent], build)


def steering_step(ctx: Context, model_dir: Path, sae_dir: Path, world: Path) -> dict[str, Any]:
    """Concept clamps and the hazard ablation on the stage's SAE (the world's labels pick the features)."""
    icfg: InterpConfig = ctx.cfg.interp
    scfg = icfg.steering
    texts = Texts(world / "train.jsonl", world / "val.jsonl", world)

    def build(d: Path) -> dict[str, Any]:
        lm = load_lm(model_dir)
        sae, cfg = load_sae(sae_dir)
        loss_ids, _ = val_rows(lm, texts, icfg.cache.seq_len, scfg.loss_rows)
        concepts = all_concepts()
        # features are chosen on training text (more of the rare recipe tokens); everything is measured held out
        ids, labels = pack_rows(lm.tokenizer, read_records(texts.train), icfg.cache.seq_len, icfg.concept_rows,
                                concepts)
        scores = feature_concepts(lm, sae, site_of(cfg), ids, labels, concepts)
        features = pick_features(scores, concepts, scfg.concepts)
        prompts = openings(world, scfg.prompts)
        rates = concept_rates(lm, sae_dir, features, prompts, concept_patterns(world), loss_ids, scfg)
        alive = torch.nonzero(scores["fires"] >= 5).squeeze(-1).tolist()
        hazard = hazard_ablation(lm, sae_dir, hazard_features(scores, scfg.hazard_features), alive,
                                 world, scfg)
        res = {"model": str(model_dir), "sae": str(sae_dir), **rates, "hazard": hazard, "prompts": len(prompts)}
        atomic_write_json(d / "steering.json", res)
        return res

    cfg = {"steering": to_dict(scfg), "seq_len": icfg.cache.seq_len, "concept_rows": icfg.concept_rows}
    return ctx.step("interp:steering", "interp_steering", ctx.layout.interp_study("steering"), cfg,
                    [model_dir, sae_dir, world], build)


def sae_scaling_step(ctx: Context, model_dir: Path, texts: Texts) -> dict[str, Any]:
    icfg: InterpConfig = ctx.cfg.interp

    def build(d: Path) -> dict[str, Any]:
        res = run_sae_scaling(load_lm(model_dir), texts.train, d, icfg, log=ctx.log)
        shutil.rmtree(d / "cache", ignore_errors=True)
        atomic_write_json(d / "sae_scaling.json", res)
        return res

    cfg = {"sae_scaling": to_dict(icfg.sae_scaling), "cache": to_dict(icfg.cache), "batch": icfg.train.batch_size,
           "dead_tokens": icfg.sae.dead_tokens}
    return ctx.step("interp:sae-scaling", "interp_sae_scaling", ctx.layout.interp_study("sae_scaling"), cfg,
                    [model_dir, texts.train.parent], build)
