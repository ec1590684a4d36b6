"""The `scalelab interp` studies and the steering flags from the command line, on a random smoke model: each
command writes its result file; `--steer` changes a generation and needs `--sae`."""

from __future__ import annotations

import json
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
    model, _ = random_smoke_model(root)
    cfg = InterpConfig(cache=ActivationsConfig(site="resid_post.0", tokens=3000, seq_len=32),
                       sae=SAEConfig(expansion_factor=4, k=8), train=TrainSAEConfig(tokens=4096, batch_size=256,
                                                                                       progress=False), eval_rows=4)
    train_sae_on_model(model, root / "world" / "train.jsonl", root / "sae", cfg, progress=False)
    compute_features(root / "sae", root / "world" / "val.jsonl", model, n_rows=16, seq_len=32)
    return {"model": model, "world": root / "world", "sae": root / "sae", "root": root}


def _ok(args: list[str], stdin: str | None = None) -> str:
    res = CliRunner().invoke(app, args, input=stdin)
    assert res.exit_code == 0, res.output
    return res.output


def test_probe_universality_circuit_and_scaling_commands(run, tmp_path) -> None:
    m, w, s = str(run["model"]), str(run["world"]), str(run["sae"])
    _ok(["interp", "probe", "--model", m, "--world", w, "--out", str(tmp_path / "p"), *SMALL,
         "--set", "interp.probe.rows=12", "--set", "interp.probe.max_iter=20"])
    probes = json.loads((tmp_path / "p" / "probes.json").read_text())
    assert probes["groups"]["entity_type"]["layers"][0]["layer"] == -1 and (tmp_path / "p" / "probes.png").is_file()

    _ok(["interp", "universality", m, m, "--world", w, "--sae-a", s, "--sae-b", s, "--out", str(tmp_path / "u"),
         *SMALL, "--set", "interp.universality.rows=8"])
    un = json.loads((tmp_path / "u" / "universality.json").read_text())
    assert un["features"]["median"] == pytest.approx(1.0)  # a model and SAE matched with themselves

    out = _ok(["interp", "circuit", "--model", m, "--world", w, "--prompt", "Ask around and you will learn that",
               "--answer", " Thalo", "--out", str(tmp_path / "c"), *SMALL, "--set", "interp.circuits.tokens=1500",
               "--set", "interp.circuits.batch_size=128", "--set", "interp.circuits.random_trials=2"])
    circ = json.loads((tmp_path / "c" / "circuits.json").read_text())
    graph = circ["graphs"][0]
    assert graph["direct_effects_sum"] == pytest.approx(graph["answer_logit"], abs=1e-3)
    assert Path(graph["graph_json"]).is_file() and "logit drop" in out

    _ok(["interp", "sae-scaling", "--model", m, "--text", w, "--site", "resid_post.0", "--out", str(tmp_path / "s"),
         *SMALL, "--set", "interp.sae_scaling.widths=[2,4]", "--set", "interp.sae_scaling.ks=[2,8]",
         "--set", "interp.sae_scaling.width=2", "--set", "interp.sae_scaling.k=8",
         "--set", "interp.sae_scaling.token_scales=[]",
         "--set", "interp.sae_scaling.tokens=1024", "--set", "interp.sae_scaling.cache_tokens=2048",
         "--set", "interp.sae_scaling.eval_rows=4", "--set", "interp.train.batch_size=256"])
    ss = json.loads((tmp_path / "s" / "sae_scaling.json").read_text())
    assert ss["fits"]["latents"]["points"] == 2 and {r["k"] for r in ss["runs"]} == {2, 8}


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
