"""The `scalelab interp` studies and the steering flags from the command line, on a random smoke model: each
command writes its result file; a model inside a run needs no --text or --world (outside one, the error names
them); circuits trace the answer's deciding token; universality across two seeds; `--steer` changes a generation
and needs `--sae`."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalelab.cli import app

SMALL = ["--preset", "smoke", "--set", "interp.cache.seq_len=32"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """A random depth-1 model in a smoke world, and a small SAE on it with its feature store."""
    from conftest import random_smoke_model
    from scalelab.interp.config import ActivationsConfig, InterpConfig
    from scalelab.interp.features import compute_features
    from scalelab.interp.run import train_sae_on_model
    from scalelab.interp.sae import SAEConfig
    from scalelab.interp.train import TrainSAEConfig

    root = tmp_path_factory.mktemp("interp_cli")
    model, model_cfg = random_smoke_model(root)
    cfg = InterpConfig(cache=ActivationsConfig(site="resid_post.0", tokens=3000, seq_len=32),
                       sae=SAEConfig(expansion_factor=4, k=8), train=TrainSAEConfig(tokens=4096, batch_size=256,
                                                                                       progress=False), eval_rows=4)
    train_sae_on_model(model, root / "world" / "train.jsonl", root / "sae", cfg, progress=False)
    compute_features(root / "sae", root / "world" / "val.jsonl", model, n_rows=16, seq_len=32)
    return {"model": model, "world": root / "world", "sae": root / "sae", "root": root, "cfg": model_cfg}


def _ok(args: list[str], stdin: str | None = None) -> str:
    res = CliRunner().invoke(app, args, input=stdin)
    assert res.exit_code == 0, res.output
    return res.output


def test_probe_universality_circuit_and_scaling_commands(run, tmp_path, monkeypatch) -> None:
    import scalelab.interp.sae_scaling as sae_scaling

    batches: list[int] = []
    train_sae = sae_scaling.train_sae
    monkeypatch.setattr(sae_scaling, "train_sae",
                        lambda cache, cfg, tcfg: batches.append(tcfg.batch_size) or train_sae(cache, cfg, tcfg))
    m, w, s = str(run["model"]), str(run["world"]), str(run["sae"])
    _ok(["interp", "probe", "--model", m, "--world", w, "--out", str(tmp_path / "p"), *SMALL,
         "--set", "interp.probe.rows=12", "--set", "interp.probe.max_iter=20"])
    probes = json.loads((tmp_path / "p" / "probes.json").read_text())
    assert probes["groups"]["entity_type"]["layers"][0]["layer"] == -1 and (tmp_path / "p" / "probes.png").is_file()

    _ok(["interp", "universality", m, m, "--world", w, "--sae-a", s, "--sae-b", s, "--out", str(tmp_path / "u"),
         *SMALL, "--set", "interp.universality.rows=8"])
    un = json.loads((tmp_path / "u" / "universality.json").read_text())
    assert un["features"]["median"] == pytest.approx(1.0)  # a model and SAE matched with themselves

    out = _ok(["interp", "circuit", "--model", m, "--prompt", "Ask around and you will learn that",
               "--answer", " Thalo", "--out", str(tmp_path / "c"), *SMALL, "--set", "interp.circuits.tokens=1500",
               "--set", "interp.circuits.batch_size=128", "--set", "interp.circuits.random_trials=2"])
    circ = json.loads((tmp_path / "c" / "circuits.json").read_text())
    graph = circ["graphs"][0]
    assert graph["direct_effects_sum"] == pytest.approx(graph["answer_logit"], abs=1e-3)
    assert Path(graph["graph_json"]).is_file() and "logit drop" in out

    _ok(["interp", "sae-scaling", "--model", m, "--site", "resid_post.0", "--out", str(tmp_path / "s"),
         *SMALL, "--set", "interp.sae_scaling.widths=[2,4]", "--set", "interp.sae_scaling.ks=[2,8]",
         "--set", "interp.sae_scaling.width=2", "--set", "interp.sae_scaling.k=8",
         "--set", "interp.sae_scaling.token_scales=[]",
         "--set", "interp.sae_scaling.tokens=1024", "--set", "interp.sae_scaling.cache_tokens=2048",
         "--set", "interp.sae_scaling.eval_rows=4", "--set", "interp.sae_scaling.batch_size=128"])
    ss = json.loads((tmp_path / "s" / "sae_scaling.json").read_text())
    assert ss["fits"]["latents"]["points"] == 2 and {r["k"] for r in ss["runs"]} == {2, 8}
    # the sweep's small SAEs train at their own batch, not the main SAE's 2048 (5-40 steps would not converge)
    assert batches == [128] * len(ss["runs"])

    # No --prompt, --world or --text: the run's world gives the prompts; the transcoders are reused.
    _ok(["interp", "circuit", "--model", m, "--transcoders", str(tmp_path / "c" / "transcoders"),
         "--out", str(tmp_path / "cw"), *SMALL, "--set", "interp.circuits.prompts=2",
         "--set", "interp.circuits.random_trials=2"])
    graphs = json.loads((tmp_path / "cw" / "circuits.json").read_text())["graphs"]
    assert [g["kind"] for g in graphs] == ["fact", "recipe"]
    assert all(g["answer"].strip() for g in graphs)  # a token of the answer itself, not the space before it


def test_defaults_outside_a_run_name_the_flag_to_pass(run, tmp_path) -> None:
    alone = tmp_path / "alone"
    shutil.copytree(run["model"], alone)  # the same model, in no run: no world beside it
    res = CliRunner().invoke(app, ["interp", "sae-scaling", "--model", str(alone), "--out", str(tmp_path / "s"),
                                   *SMALL])
    assert res.exit_code == 2 and "not inside a scalelab run" in res.output and "--text" in res.output
    res = CliRunner().invoke(app, ["interp", "circuit", "--model", str(alone), "--prompt", "One morning,",
                                   "--out", str(tmp_path / "c"), *SMALL])
    assert res.exit_code == 2 and "--text or --world" in res.output
    assert not (tmp_path / "s").exists() and not (tmp_path / "c").exists()


def test_world_prompts_trace_the_token_that_decides_the_answer(run) -> None:
    from scalelab.interp.circuits.run import target_for, world_prompts
    from scalelab.model.lm import load_lm

    lm = load_lm(run["model"])
    prompts = world_prompts(run["world"], 20)
    first_is_space = 0
    for p in prompts:
        assert p.answer in p.choices
        ids = lm.encode(p.answer)
        first_is_space += not lm.decode(ids[:1]).strip()
        tokens, target = target_for(lm, p.prompt, p.answer, p.choices)
        forced = tokens[len(lm.encode(p.prompt, bos=True)):]
        assert lm.decode([target]).strip(), (p.answer, forced)  # never a bare space
        assert ids[:len(forced) + 1] == [*forced, target]  # the answer's own tokens, in order
        for other in (lm.encode(c) for c in p.choices if c != p.answer):  # no alternative goes on as it does
            assert other[:len(forced) + 1] != [*forced, target]
    assert first_is_space > 0  # the case the rule is for occurs here: the answer's first token is the space


def test_universality_across_two_seeds(run, tmp_path) -> None:
    """A second model from another seed (same tokenizer, in the same run): the command trains B's SAE itself;
    every statistic is finite, and a model matched with itself agrees better than with the other seed."""
    import torch

    from scalelab.model.hf import save_hf
    from scalelab.model.llama import Llama

    torch.manual_seed(1)
    other = save_hf(Llama(run["cfg"]), run["root"] / "models" / "d1-seed1" / "final",
                    tokenizer_dir=run["root"] / "tokenizer")
    m, w, s = str(run["model"]), str(run["world"]), str(run["sae"])
    common = [*SMALL, "--set", "interp.universality.rows=8", "--set", "interp.cache.site=resid_post.0",
              "--set", "interp.cache.tokens=3000", "--set", "interp.sae.expansion_factor=4", "--set", "interp.sae.k=8",
              "--set", "interp.train.tokens=4096", "--set", "interp.train.batch_size=256"]
    _ok(["interp", "universality", m, m, "--world", w, "--sae-a", s, "--sae-b", s, "--out", str(tmp_path / "self"),
         *common])
    _ok(["interp", "universality", m, str(other), "--world", w, "--sae-a", s, "--out", str(tmp_path / "cross"),
         *common])
    same = json.loads((tmp_path / "self" / "universality.json").read_text())
    cross = json.loads((tmp_path / "cross" / "universality.json").read_text())
    assert (tmp_path / "cross" / "sae_b" / "cfg.json").is_file()
    for kind in ("features", "neurons"):
        stats = cross[kind]
        assert stats["units"] > 0
        assert all(math.isfinite(stats[k]) for k in ("median", "mean", "frac_above_0.5", "frac_above_0.7"))
        assert all(math.isfinite(c) and -1 <= c <= 1 for c in cross[f"{kind[:-1]}_best_corr"])
        assert same[kind]["median"] > stats["median"]


def test_superposition_command(tmp_path) -> None:
    _ok(["interp", "superposition", "--out", str(tmp_path), "--preset", "smoke",
         "--set", "interp.superposition.geometry.sparsities=[0.0,0.9]",
         "--set", "interp.superposition.geometry.steps=50",
         "--set", "interp.superposition.phase.densities=2", "--set", "interp.superposition.phase.importances=2",
         "--set", "interp.superposition.phase.steps=20", "--set", "interp.superposition.dimensionality.steps=20",
         "--set", "interp.superposition.dimensionality.sparsities=2"])
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["phase"]["shape"] == [2, 2] and len(res["geometry"]["per_sparsity"]) == 2


def test_generate_and_chat_steer_and_ablate(run) -> None:
    m, s = str(run["model"]), str(run["sae"])
    from scalelab.interp.steering import max_activations

    loudest = max(max_activations(s).items(), key=lambda kv: kv[1])[0]
    base = ["generate", m, "One morning,", "-n", "12", "-T", "0"]
    clean = _ok(base)
    steered = _ok([*base, "--sae", s, "--steer", f"{loudest}=20"])
    assert steered != clean
    assert _ok([*base, "--sae", s, "--steer", f"{loudest}=0"]) == _ok([*base, "--sae", s, "--ablate", str(loudest)])
    res = CliRunner().invoke(app, [*base, "--steer", "3=10"])
    assert res.exit_code == 2 and "--sae" in res.output
    res = CliRunner().invoke(app, [*base, "--sae", s, "--steer", "3"])
    assert res.exit_code == 2 and "FEATURE=SCALE" in res.output
    out = _ok(["chat", m, "--sae", s, "--ablate", str(loudest), "-n", "6"], stdin="Hello\nAgain\n\n")
    assert out.count("assistant>") == 2  # one intervention, entered once per turn
