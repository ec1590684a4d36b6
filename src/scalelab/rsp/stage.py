"""The `rsp` stage of `scalelab run`: assess every ladder model and post-trained model under the policy.

For each model (ladder rungs `models/d*/final`, then the post-training steps' models `posttrain/<step>` in
the order they ran) it runs the policy's capability evals through Inspect (`assess.assess_model`), writes
the capability report (Markdown + JSON) in `rsp/<model>/`, the determination sidecar next to the
weights, and, when the determination needs safeguards and `rsp.safeguards` is on, measures them
(`gate.measure_required`; the SAE monitor uses an SAE trained on that very model, found by
`safeguards.find_sae`, and fails with the reason when there is none) so the gate has a verdict.
Each assessment is an artifact through `Context.step`: its config carries the policy's hash, the
weights' hash, the scaling fit's hash and the elicitations, its parents are the model, the world's
eval sets, the fit and the policy file, so the registry traces a determination to what produced it
and a rerun with the same inputs skips it.

Elicitations: those the policy requires (or `rsp.elicitations`), except the fine-tune elicitation,
which trains a model per assessment and so runs only on the largest ladder model (`rsp.fine_tune_largest`);
the report says which ran where. The reasoning elicitation needs a reasoning-trained model, so it runs only
on the rung the `reasoning` stage trained (its arithmetic task's last step, asked to work sums out in its
scratchpad). `assess_and_record` is the same path `scalelab rsp assess` takes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalelab.artifacts import model_sha256
from scalelab.computer.capability import autonomy_capability
from scalelab.config import to_dict
from scalelab.errors import MissingInput
from scalelab.evals.capability.elicitation import ReasoningModel
from scalelab.layout import RunLayout, rung_name
from scalelab.posttrain.steps import STEPS
from scalelab.reasoning.steps import DIRECT
from scalelab.reasoning.steps import STEPS as REASONING_STEPS
from scalelab.reasoning.tasks.arithmetic import QUESTION
from scalelab.reasoning.tasks.base import ANSWER
from scalelab.rsp.assess import Assessment, assess_model, write_capability_report
from scalelab.rsp.autonomy import assess_autonomy
from scalelab.rsp.config import RSPConfig
from scalelab.rsp.gate import measure_required, write_determination
from scalelab.rsp.policy import HIGHER, Policy, load_policy
from scalelab.rsp.report import section_rsp
from scalelab.stage import Context, Stage, Summary

FINE_TUNE = "fine_tune"
REASONING = "reasoning"


def elicitations_for(policy: Policy, cfg: RSPConfig, fine_tune: bool, reasoning: bool = False) -> list[str]:
    """The elicitations one model gets: the config's (or the policy's), fine-tuning only where allowed, the
    reasoning elicitation only where a reasoning-trained model exists."""
    chosen = list(cfg.elicitations or policy.elicitations)
    return [e for e in chosen if (e != FINE_TUNE or fine_tune) and (e != REASONING or reasoning)]


def reasoning_model(layout: RunLayout, summary: Summary, name: str) -> ReasoningModel | None:
    """The reasoning stage's arithmetic model when it was trained from rung `name` (the last step it ran)."""
    r = summary.get("reasoning") or {}
    steps = (r.get("tasks") or {}).get("arithmetic") or {}
    depth = (r.get("scale") or {}).get("depth")
    done = [s for s in REASONING_STEPS if s in steps and s != DIRECT]
    if depth is None or rung_name(depth) != name or not done:
        return None
    folder = layout.reasoning("arithmetic", done[-1])
    return ReasoningModel(folder, QUESTION, ANSWER) if (folder / "config.json").is_file() else None


def assess_and_record(model_dir: Path, policy: Policy, world_dir: Path, out_dir: Path, *, limit: int | None,
                      elicitations: Sequence[str], fit_json: Path | None, seed: int = 0, name: str | None = None,
                      safeguards: bool = False, sae_dir: Path | None = None, safeguards_limit: int | None = None,
                      notes: Sequence[str] = (), reasoning: ReasoningModel | None = None
                      ) -> tuple[Assessment, dict[str, Any] | None]:
    """Assess one model, write its capability report in `out_dir` (with `notes` under it) and its sidecar;
    optionally measure the safeguards its determination requires. Returns the assessment and the safeguards
    report (or None)."""
    out_dir = Path(out_dir)
    a = assess_model(model_dir, policy, world_dir, log_dir=out_dir / "logs", work_dir=out_dir / "work",
                     elicitations=elicitations, limit=limit, fit_json=fit_json, seed=seed, name=name,
                     reasoning=reasoning)
    a.notes += list(notes)
    paths = write_capability_report(a, out_dir)
    write_determination(model_dir, a, paths["markdown"])
    guards = None
    if safeguards and a.crossed:
        guards = measure_required(model_dir, policy, world_dir, out_dir, sae_dir=sae_dir, limit=safeguards_limit)
    return a, guards


def _forecast_sha(fit_json: Path) -> str:
    """Hash of the forecasts an assessment reads: the scaling stage rewrites fit.json (timings) on every run,
    so hashing the whole file would re-run every assessment on every rerun."""
    table = json.loads(fit_json.read_text(encoding="utf-8")).get("forecast_table")
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()


def _models(ctx: Context, summary: Summary) -> list[dict[str, Any]]:
    """The models to assess: ladder rungs (by depth), then the post-training steps' models in order."""
    # "artifact" is the registered artifact holding the weights (the lineage parent): the rung's models/dN
    # folder, or the post-training step's own folder
    out = [{"name": m["name"], "kind": "ladder", "dir": ctx.layout.model(m["name"]),
            "artifact": ctx.layout.rung(m["name"]), "base": m["name"]} for m in summary.get("models", [])]
    pt = summary.get("posttrain")
    if ctx.cfg.rsp.posttrained and pt:
        for step in (s for s in STEPS if s in pt.get("steps", {})):
            d = ctx.layout.posttrain(step)
            if (d / "config.json").is_file():
                out.append({"name": step, "kind": "posttrained", "dir": d, "artifact": d, "base": pt.get("model")})
    return out


def run_rsp(ctx: Context, summary: Summary) -> dict[str, Any] | None:
    """Assess every model of the run; returns `summary.json["rsp"]`."""
    cfg: RSPConfig = ctx.cfg.rsp
    if ctx.cfg.corpus != "world" or not summary.get("models"):
        ctx.log("[rsp] skipped: the capability evals read the world's labelled sets (corpus=world) of a ladder")
        return None
    t0 = time.perf_counter()
    policy = load_policy(cfg.policy)
    world = ctx.layout.world
    fit = ctx.layout.fit
    fit_json = fit if fit.is_file() else None
    largest = max(summary["models"], key=lambda m: m["train_flops"])["name"]
    ident = {k: v for k, v in to_dict(cfg).items() if k not in ("policy", "posttrained")}
    policy_parents = [Path(cfg.policy)] if Path(cfg.policy).is_file() else []
    rows = []
    for m in _models(ctx, summary):
        reasoned = reasoning_model(ctx.layout, summary, m["name"]) if m["kind"] == "ladder" else None
        elic = elicitations_for(policy, cfg, fine_tune=cfg.fine_tune_largest and m["name"] == largest,
                                reasoning=reasoned is not None)
        notes = []
        if REASONING in (cfg.elicitations or policy.elicitations) and reasoned is None:
            notes.append("The reasoning elicitation ran only on the rung the reasoning stage trained "
                         "(reasoning.depth).")
        if FINE_TUNE in (cfg.elicitations or policy.elicitations) and FINE_TUNE not in elic:
            notes.append(f"The fine-tune elicitation ran on the largest ladder model ({largest}) only "
                         "(rsp.fine_tune_largest): it trains a model per assessment.")
        if m["kind"] == "posttrained":
            notes.append(f"Training compute is the base model's ({m['base']}): post-training FLOPs are not "
                         "counted (a rounding error next to pretraining's at these sizes).")
        config = {**ident, "elicitations": elic, "model": m["name"], "policy": policy.name,
                  "policy_sha256": policy.sha256, "model_sha256": model_sha256(m["dir"]),
                  "forecasts_sha256": _forecast_sha(fit) if fit_json else None}
        parents = [m["artifact"], world / "evals", *([fit] if fit_json else []), *policy_parents,
                   *([reasoned.model_dir] if reasoned else [])]
        if reasoned:
            config["reasoning_model_sha256"] = model_sha256(reasoned.model_dir)

        def build(d: Path, m: dict[str, Any] = m, elic: list[str] = elic, notes: list[str] = notes,
                  reasoned: ReasoningModel | None = reasoned) -> dict[str, Any]:
            a, guards = assess_and_record(m["dir"], policy, world, d, limit=cfg.limit or None, elicitations=elic,
                                          fit_json=fit_json, seed=cfg.seed, name=m["name"],
                                          safeguards=cfg.safeguards,
                                          safeguards_limit=cfg.safeguards_limit or None, notes=notes,
                                          reasoning=reasoned)
            return {"assessment": a.to_dict(), "safeguards_met": None if guards is None else guards["met"],
                    "safeguards": None if guards is None else [
                        {k: r[k] for k in ("name", "metric", "value", "criterion", "passed")}
                        for r in guards["results"]]}

        res = ctx.step(f"rsp:{m['name']}", "rsp_assessment", ctx.layout.rsp(m["name"]), config, parents, build)
        rows.append({**_row(res["assessment"]), "kind": m["kind"], "base": m["base"],
                     "safeguards_met": res.get("safeguards_met"), "safeguards": res.get("safeguards"),
                     "report": ctx.layout.relative(ctx.layout.capability_report(m["name"])),
                     "stage_seconds": res.get("stage_seconds")})
    agents = []
    if summary.get("computer"):
        a = assess_autonomy(policy, autonomy_capability(summary["computer"]))
        if a is not None:
            out = ctx.layout.rsp(a.model.replace(":", "-"))
            write_capability_report(a, out)
            agents.append({**_row(a.to_dict()), "kind": "agent", "base": None,
                           "report": ctx.layout.relative(out / "capability_report.md")})
    return {"policy": policy_summary(policy), "models": rows, "agents": agents,
            "cadence": cadence(rows, policy.compute_multiple),
            "fit_json": None if fit_json is None else ctx.layout.relative(fit_json),
            "seconds": round(time.perf_counter() - t0, 1)}


def _row(a: dict[str, Any]) -> dict[str, Any]:
    """The compact per-model record summary.json keeps (the full one is the capability report's JSON)."""
    keep = ("threshold", "eval", "value", "ci", "n", "elicitation", "by_elicitation", "verdict", "margin",
            "requires", "forecast")
    # an assessment recorded before thresholds had a direction was made under "higher is more capable"
    return {"name": a["model"], "compute": a["compute"], "asl": a["asl"], "crossed": a["crossed"],
            "buffer": a["buffer"], "elicitations": a["elicitations"],
            "rows": [{**{k: r[k] for k in keep}, "direction": r.get("direction", HIGHER)} for r in a["rows"]]}


def policy_summary(policy: Policy) -> dict[str, Any]:
    return {"name": policy.name, "source": policy.source, "sha256": policy.sha256, "baseline_asl": policy.baseline_asl,
            "compute_multiple": policy.compute_multiple, "elicitations": list(policy.elicitations),
            "thresholds": [{"id": t.id, "name": t.name, "eval": t.eval, "metric": t.metric, "direction": t.direction,
                            "red": t.red, "yellow": t.yellow, "requires": t.requires, "forecast": t.forecast}
                           for t in policy.thresholds]}


def cadence(rows: Sequence[dict[str, Any]], multiple: float) -> list[dict[str, Any]]:
    """When a comprehensive assessment falls due along the ladder: the first model, then each one with at
    least `multiple`× the compute of the last one that was due (every model is assessed regardless)."""
    ladder = sorted((r for r in rows if r["kind"] == "ladder" and r["compute"]), key=lambda r: r["compute"])
    out, last = [], None
    for r in ladder:
        due = last is None or r["compute"] >= multiple * last
        out.append({"name": r["name"], "compute": r["compute"],
                    "ratio_to_last_due": None if last is None else r["compute"] / last, "due": due})
        if due:
            last = r["compute"]
    return out


def assess_paths(models: Sequence[Path], policy_ref: str, out: Path, cfg: RSPConfig, *, world_dir: Path | None = None,
                 fit_json: Path | None = None, elicitations: Sequence[str] | None = None,
                 log: Any = print) -> list[Assessment]:
    """`scalelab rsp assess`: each model's report in OUT/<model>/ and its sidecar; world and scaling fit found
    from the run directory holding the model unless given."""
    policy = load_policy(policy_ref)
    done = []
    for model_dir in models:
        run = RunLayout.of(model_dir)
        world = world_dir or (run.world if run else None)
        if world is None:
            raise MissingInput(f"cannot find the world of {model_dir} (no world/evals above it); pass --world")
        fit = fit_json or (run.fit if run else None)
        name = RunLayout.model_label(model_dir)
        summary = json.loads(run.summary.read_text()) if run and run.summary.is_file() else {}
        reasoned = reasoning_model(run, summary, name) if run else None
        elic = [e for e in elicitations or cfg.elicitations or policy.elicitations if e != REASONING or reasoned]
        a, _ = assess_and_record(Path(model_dir), policy, Path(world), Path(out) / name, limit=cfg.limit or None,
                                 elicitations=elic, fit_json=fit if fit and Path(fit).is_file() else None,
                                 seed=cfg.seed, name=name, reasoning=reasoned)
        log(f"{name}: {a.to_dict()['asl_name']} (crossed: {', '.join(a.crossed) or 'none'}; buffer: "
            f"{', '.join(a.buffer) or 'none'}) → {Path(out) / name / 'capability_report.md'}")
        done.append(a)
    return done


STAGE = Stage("rsp", run_rsp, section_rsp)
