"""`scalelab interp ...`: SAEs and their features, toy superposition, probes, universality, circuits, SAE scaling.

Each command is a thin layer over one of the package's functions. Settings that are config fields are `--set`
keys of the `interp` section (`interp.cache.site`, `interp.probe.layers`, `interp.circuits.k`, ...), resolved
preset → `--config` YAML → `--set` by the loader the `scalelab` command mounts this app with
(`context_settings={"obj": loader}`): presets live above this package, which may not import them. Commands
import their modules when they run, so `scalelab --help` stays fast; an error the user can fix is one line
(exit 2).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from scalelab.errors import InputError, MissingInput, UserError

app = typer.Typer(no_args_is_help=True, help="Interpretability: SAEs, features, superposition, probes, universality, "
                                             "circuits, SAE scaling laws.")

PresetOpt = Annotated[str | None, typer.Option("--preset", "-p", help="smoke | tiny | gpu")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override a config key: interp.<key>=value")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of config keys")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output directory")]
ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="HF causal LM folder")]
WorldOpt = Annotated[Path, typer.Option("--world", help="world directory (its val split is read, with labels)")]


def user_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """Report an error the user can fix as one line (exit 2); anything else keeps its traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except UserError as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
    return wrapper


def run_config(ctx: typer.Context, preset: str | None, set_: list[str] | None, config: Path | None) -> Any:
    """The run config through the mounting command's loader (`scalelab.presets.load_config`)."""
    loader = ctx.obj
    if not callable(loader):
        raise RuntimeError("mount this app with context_settings={'obj': load_config}, as scalelab.cli does")
    return loader(preset, set_, config)


def _echo_json(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def _world_text(world: Path, split: str) -> Path:
    path = world / f"{split}.jsonl"
    if not path.is_file():
        raise MissingInput(f"{path} not found; --world takes a world directory (`scalelab world --out DIR`)")
    return path


@app.command("sae")
@user_errors
def sae(ctx: typer.Context, model: ModelOpt,
        text: Annotated[Path | None, typer.Option(
            "--text", help="world dir, .jsonl or .txt (default: the preset's world, in OUT/world)")] = None,
        out: OutOpt = Path("out/sae"), preset: PresetOpt = None, set_: SetOpt = None,
        config: ConfigOpt = None) -> None:
    """Train an SAE on a model's activations; writes OUT in SAELens's layout with its metrics. Its settings are
    the `interp` config section: e.g. --set interp.cache.site=mlp_out.3 --set interp.sae.arch=jumprelu
    --set interp.sae.k=16 --set interp.sae.expansion_factor=8 --set interp.train.tokens=400000."""
    from scalelab.interp.run import train_sae_on_model

    run_cfg = run_config(ctx, preset, set_, config)
    source = text
    if source is None:  # any causal LM can read the world's text; build it once beside the SAE
        from scalelab.world import build_world

        source = out / "world"
        if not (source / "train.jsonl").is_file():
            build_world(run_cfg.world, source)
    res = train_sae_on_model(model, source, out, run_cfg.interp)
    _echo_json({k: v for k, v in res.items() if k != "history"})


@app.command("features")
@user_errors
def features(sae_dir: Annotated[Path, typer.Argument(help="SAE folder (SAELens layout)")],
             text: Annotated[Path | None, typer.Option("--text", help="text to read (to build)")] = None,
             model: Annotated[Path | None, typer.Option("--model", help="default: the SAE's")] = None,
             feature: Annotated[int | None, typer.Option("--feature", "-f", help="print this one")] = None,
             html_out: Annotated[Path | None, typer.Option("--html", help="export it as HTML")] = None,
             rows: Annotated[int, typer.Option(help="sequences to read")] = 256,
             seq_len: Annotated[int, typer.Option("--seq-len")] = 128,
             rebuild: Annotated[bool, typer.Option("--rebuild")] = False) -> None:
    """Build SAE_DIR/features.sqlite (density, contexts, logit effects, histograms); print a feature."""
    from scalelab.interp.features import compute_features, feature_html, feature_markdown, read_feature

    db = sae_dir / "features.sqlite"
    if rebuild or not db.is_file():
        if text is None:
            raise InputError(f"{db} does not exist yet; pass --text (a world dir, .jsonl or .txt) to build it")
        compute_features(sae_dir, text, model, db, n_rows=rows, seq_len=seq_len)
        typer.echo(f"feature store → {db}")
    if feature is not None:
        feat = read_feature(db, feature)
        typer.echo(feature_markdown(feat))
        if html_out is not None:
            from scalelab.artifacts import atomic_write_text

            atomic_write_text(html_out, feature_html(feat))
            typer.echo(f"HTML → {html_out}")


@app.command("superposition")
@user_errors
def superposition(ctx: typer.Context, out: OutOpt = Path("out/superposition"), preset: PresetOpt = None,
                  set_: SetOpt = None, config: ConfigOpt = None) -> None:
    """Toy Models of Superposition (Elhage et al. 2022): geometry vs sparsity, the phase diagram, feature
    dimensionality → OUT/results.json and figures (settings: interp.superposition.*)."""
    from scalelab.interp.superposition import run_superposition, superposition_summary

    cfg = run_config(ctx, preset, set_, config).interp.superposition
    _echo_json(superposition_summary(run_superposition(out, cfg)))


@app.command("probe")
@user_errors
def probe(ctx: typer.Context, model: ModelOpt, world: WorldOpt, out: OutOpt = Path("out/probes"),
          preset: PresetOpt = None, set_: SetOpt = None, config: ConfigOpt = None) -> None:
    """Linear probes per layer for the world's concepts (entity type, relation, attribute, hazard step) against a
    shuffled-label control → OUT/probes.json + probes.png (settings: interp.probe.*)."""
    from scalelab.artifacts import atomic_write_json
    from scalelab.interp.plots import plot_probes
    from scalelab.interp.probes import run_probes
    from scalelab.interp.text import pack_rows, read_records
    from scalelab.model.lm import load_lm
    from scalelab.world import all_concepts

    icfg = run_config(ctx, preset, set_, config).interp
    lm = load_lm(model)
    concepts = all_concepts()
    ids, labels = pack_rows(lm.tokenizer, read_records(_world_text(world, "val")), icfg.cache.seq_len,
                            icfg.probe.rows, concepts)
    res = run_probes(lm.model, ids, labels, concepts, icfg.probe)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "probes.json", res)
    plot_probes(res, out / "probes.png")
    for group, r in res["groups"].items():
        typer.echo(f"{group}: " + (r.get("skipped") or ", ".join(
            f"L{row['layer']} {row['accuracy']:.2f} (ctrl {row['control']:.2f})" for row in r["layers"])))
    typer.echo(f"→ {out / 'probes.json'}")


@app.command("universality")
@user_errors
def universality(ctx: typer.Context, a: Annotated[Path, typer.Argument(help="model A (HF folder)")],
                 b: Annotated[Path, typer.Argument(help="model B, same tokenizer (another seed or size)")],
                 world: WorldOpt,
                 sae_a: Annotated[Path | None, typer.Option("--sae-a", help="A's SAE (default: trained)")] = None,
                 sae_b: Annotated[Path | None, typer.Option("--sae-b", help="B's SAE (default: trained)")] = None,
                 out: OutOpt = Path("out/universality"), preset: PresetOpt = None, set_: SetOpt = None,
                 config: ConfigOpt = None) -> None:
    """SAEs on the same site of two models, matched feature by feature (and neuron by neuron) by activation
    correlation over the same tokens; concept agreement of matched pairs → OUT/universality.json."""
    from scalelab.artifacts import atomic_write_json
    from scalelab.interp.plots import plot_universality
    from scalelab.interp.run import train_sae_on_model
    from scalelab.interp.saelens import load_sae, site_of
    from scalelab.interp.text import pack_rows, read_records
    from scalelab.interp.universality import compare, unit_activations
    from scalelab.model.lm import load_lm
    from scalelab.world import all_concepts

    icfg = run_config(ctx, preset, set_, config).interp
    dirs = {}
    for key, model_dir, given in (("a", a, sae_a), ("b", b, sae_b)):
        dirs[key] = given or out / f"sae_{key}"
        if given is None and not (dirs[key] / "cfg.json").is_file():
            train_sae_on_model(model_dir, _world_text(world, "train"), dirs[key], icfg)
    lm_a, lm_b = load_lm(a), load_lm(b)
    if lm_a.tokenizer.get_vocab() != lm_b.tokenizer.get_vocab():
        raise InputError(f"{a} and {b} have different tokenizers; universality compares activations on the same "
                         "tokens")
    concepts = all_concepts()
    ids, labels = pack_rows(lm_a.tokenizer, read_records(_world_text(world, "val")), icfg.cache.seq_len,
                            icfg.universality.rows, concepts)
    units = []
    for lm, key in ((lm_a, "a"), (lm_b, "b")):
        sae_model, cfg = load_sae(dirs[key])
        units.append(unit_activations(lm.model, sae_model, site_of(cfg), ids))
    res = compare(units[0], units[1], labels, concepts, icfg.universality.min_fires)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "universality.json", res)
    plot_universality({"best_corr": {"A→B": {"features": res["feature_best_corr"],
                                             "neurons": res["neuron_best_corr"]}}}, out / "universality.png")
    _echo_json({k: res[k] for k in ("features", "neurons", "tokens")})


@app.command("circuit")
@user_errors
def circuit(ctx: typer.Context, model: ModelOpt,
            prompt: Annotated[str | None, typer.Option("--prompt", help="default: the world's eval prompts")] = None,
            answer: Annotated[str | None, typer.Option(
                "--answer", help="the answer's text (its first non-whitespace token is traced); default: the "
                                 "model's top next token")] = None,
            world: Annotated[Path | None, typer.Option(
                "--world", help="world directory (prompts); default: the model's run's world")] = None,
            text: Annotated[Path | None, typer.Option(
                "--text", help="transcoder training text; default: --world's, else the model's run's")] = None,
            transcoders: Annotated[Path | None, typer.Option("--transcoders", help="reuse trained ones")] = None,
            out: OutOpt = Path("out/circuit"), preset: PresetOpt = None, set_: SetOpt = None,
            config: ConfigOpt = None) -> None:
    """Per-layer transcoders, then an attribution graph per prompt, pruned and checked by ablation → OUT/graphs/
    (circuit-tracer's JSON) and OUT/circuits.json (settings: interp.circuits.*). A model inside a `scalelab run`
    needs neither --world nor --text: the run's world and training text are the defaults."""
    from scalelab.artifacts import atomic_write_json
    from scalelab.interp.circuits.run import given_prompt, run_circuits, world_prompts
    from scalelab.interp.run_texts import run_train_text, run_world
    from scalelab.layout import RunLayout
    from scalelab.model.lm import load_lm

    icfg = run_config(ctx, preset, set_, config).interp
    if prompt is None and world is None:
        world = run_world(model, "--prompt (with --answer, or the model's own next token is the target) or --world")
    source = text or (_world_text(world, "train") if world else None)
    if source is None and transcoders is None:
        source = run_train_text(model, "--text or --world (or --transcoders)")
    if prompt is None:
        prompts = world_prompts(world, icfg.circuits.prompts)
    else:  # a world's prompt and answer are traced as in the stage (choices decide the target token)
        layout = RunLayout.of(model)
        prompts = [given_prompt(prompt, answer, world or (layout.world if layout else None))]
    res = run_circuits(load_lm(model), source or Path(), out, icfg.circuits, prompts, seq_len=icfg.cache.seq_len,
                       transcoders=transcoders, log=typer.echo)
    atomic_write_json(out / "circuits.json", res)
    typer.echo(f"→ {out / 'circuits.json'}; graphs in {res['graphs_dir']}")


@app.command("sae-scaling")
@user_errors
def sae_scaling(ctx: typer.Context, model: ModelOpt,
                text: Annotated[Path | None, typer.Option(
                    "--text", help="world dir, .jsonl or .txt; default: the model's run's training text")] = None,
                site: Annotated[str | None, typer.Option("--site", help="default: interp.cache.site")] = None,
                out: OutOpt = Path("out/sae_scaling"), preset: PresetOpt = None, set_: SetOpt = None,
                config: ConfigOpt = None) -> None:
    """SAE scaling laws (Gao et al. 2024): normalised MSE vs latents, k and tokens, fitted exponents with
    intervals, dead fraction vs width → OUT/sae_scaling.json + sae_scaling.png (settings: interp.sae_scaling.*)."""
    from scalelab.artifacts import atomic_write_json
    from scalelab.interp.plots import plot_sae_scaling
    from scalelab.interp.run_texts import run_train_text
    from scalelab.interp.sae_scaling import run_sae_scaling
    from scalelab.model.lm import load_lm

    icfg = run_config(ctx, preset, set_, config).interp
    res = run_sae_scaling(load_lm(model), text or run_train_text(model), out, icfg, site=site, log=typer.echo)
    atomic_write_json(out / "sae_scaling.json", res)
    plot_sae_scaling(res, out / "sae_scaling.png")
    _echo_json(res["fits"])
