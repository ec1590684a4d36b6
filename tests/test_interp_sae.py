"""SAE architectures recover a planted sparse dictionary; the registry and bad inputs; SAELens layout, checked
by SAELens itself in its own interpreter (`saelens_roundtrip.py`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from scalelab.interp.sae import ARCHITECTURES, SAEConfig, make_sae
from scalelab.interp.saelens import CFG, WEIGHTS, load_sae, save_sae, site_of
from scalelab.interp.train import TrainSAEConfig, train_sae

ROOT = Path(__file__).parents[1]
D_IN, N_DIRS, ACTIVE = 32, 48, 3
ARCH_KW = {"topk": {"k": 3}, "batchtopk": {"k": 3}, "relu": {"l1_coeff": 0.3},
           "jumprelu": {"l0_coeff": 0.05, "jump_init_threshold": 0.3}}


def planted(n: int = 40_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations that are sparse non-negative combinations of known unit directions, plus an offset."""
    g = torch.Generator().manual_seed(seed)
    dirs = F.normalize(torch.randn(N_DIRS, D_IN, generator=g), dim=-1)
    idx = torch.rand(n, N_DIRS, generator=g).argsort(-1)[:, :ACTIVE]
    coef = torch.zeros(n, N_DIRS).scatter_(1, idx, torch.rand(n, ACTIVE, generator=g) + 0.5)
    return coef @ dirs + 0.3, dirs


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_each_architecture_recovers_a_planted_dictionary(arch: str) -> None:
    x, dirs = planted()
    cfg = SAEConfig(arch=arch, d_in=D_IN, d_sae=2 * N_DIRS, dead_tokens=20_000, **ARCH_KW[arch])
    res = train_sae(x, cfg, TrainSAEConfig(tokens=100_000, batch_size=512, lr=5e-3, progress=False))
    learned = F.normalize(res.sae.W_dec.detach(), dim=-1)
    best_cos = (dirs @ learned.T).max(1).values
    assert (best_cos >= 0.9).float().mean() >= 0.9, f"{arch}: {best_cos.sort().values[:10]}"
    assert res.history[-1]["fvu"] < 0.15
    # The decoder stays unit-norm throughout.
    assert torch.allclose(res.sae.W_dec.norm(dim=-1), torch.ones(cfg.d_sae), atol=1e-4)


def test_unknown_architecture_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="topk"):
        make_sae(SAEConfig(arch="gated", d_in=4, d_sae=8))


def test_training_refuses_nan_and_mismatched_width() -> None:
    x, _ = planted(2048)
    bad = x.clone()
    bad[5, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        train_sae(bad, SAEConfig(arch="topk", d_in=D_IN, d_sae=64), TrainSAEConfig(tokens=512, progress=False))
    with pytest.raises(ValueError, match="d_in=16"):
        train_sae(x, SAEConfig(arch="topk", d_in=16, d_sae=64), TrainSAEConfig(tokens=512, progress=False))


def _trained(arch: str):
    x, _ = planted(8192, seed=1)
    cfg = SAEConfig(arch=arch, d_in=D_IN, d_sae=64, dead_tokens=2048, **ARCH_KW[arch])
    return train_sae(x * 3.0, cfg, TrainSAEConfig(tokens=8192, batch_size=256, progress=False)).sae, x * 3.0


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_saelens_layout_round_trip(tmp_path, arch: str) -> None:
    sae, x = _trained(arch)
    assert float(sae.norm_scale) != 1.0  # the scale is folded into the saved weights
    save_sae(sae, tmp_path, metadata={"model_name": "m", "site": "resid_post.2"}, training_metrics={"fvu": 0.1})
    cfg = json.loads((tmp_path / CFG).read_text())
    assert cfg["metadata"]["hook_name"] == "blocks.2.hook_resid_post"
    assert cfg["normalize_activations"] == "none" and cfg["d_in"] == D_IN and cfg["d_sae"] == 64
    assert cfg["architecture"] == {"relu": "standard", "topk": "topk"}.get(arch, "jumprelu")
    if arch == "topk":
        assert cfg["k"] == sae.cfg.k
    loaded, _ = load_sae(tmp_path)
    assert site_of(cfg) == "resid_post.2"
    with torch.no_grad():
        assert torch.allclose(loaded.encode(x[:256]), sae.encode(x[:256]), atol=1e-4)
        assert torch.allclose(loaded(x[:256]), sae(x[:256]), atol=1e-4)


@pytest.fixture(scope="module")
def saelens_roundtrip(tmp_path_factory) -> dict[str, tuple]:
    """Every architecture saved by scalelab, loaded, run and saved back by SAELens in its own interpreter.

    sae-lens pins transformer-lens < 4, which clashes with this project's transformers 5, so it lives in its
    own virtual environment (`make saelens`, part of `make test`); one subprocess does every folder.
    Returns {arch: (scalelab's SAE, the input, SAELens's features, its reconstruction, the resaved folder)}.
    """
    python = Path(os.environ.get("SCALELAB_SAELENS_PYTHON", ROOT / ".venv-saelens" / "bin" / "python"))
    if not python.is_file():
        pytest.fail(f"no SAELens interpreter at {python}: build it with `make saelens` (`make test` does), or "
                    "point SCALELAB_SAELENS_PYTHON at a Python with sae-lens 6 installed")
    tmp = tmp_path_factory.mktemp("saelens")
    archs = sorted(ARCHITECTURES)
    trained = {arch: _trained(arch) for arch in archs}
    x = trained["topk"][1][:256].contiguous()
    for arch, (sae, _) in trained.items():
        save_sae(sae, tmp / arch, metadata={"model_name": "m", "site": "resid_post.0"})
    save_file({"x": x}, tmp / "inputs.safetensors")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(python), str(ROOT / "tests" / "saelens_roundtrip.py"), str(tmp / "inputs.safetensors"),
                           str(tmp / "outputs.safetensors"), *(str(tmp / arch) for arch in archs)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = load_file(tmp / "outputs.safetensors")
    return {arch: (trained[arch][0], x, theirs[f"{i}.features"], theirs[f"{i}.reconstruction"], tmp / arch / "resaved")
            for i, arch in enumerate(archs)}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_our_sae_loads_in_saelens_and_computes_the_same(saelens_roundtrip, arch: str) -> None:
    sae, x, features, reconstruction, resaved = saelens_roundtrip[arch]
    with torch.no_grad():
        ours = sae.encode(x)
        assert (ours > 0).any(), "the fixed input must switch some features on for the comparison to mean much"
        assert torch.allclose(features, ours, atol=1e-4)
        assert torch.allclose(reconstruction, sae(x), atol=1e-4)
    # ... and the folder SAELens wrote back loads into scalelab and computes the same.
    back, _ = load_sae(resaved)
    with torch.no_grad():
        assert torch.allclose(back(x), sae(x), atol=1e-4)


def test_load_refuses_wrong_shapes_and_unknown_architectures(tmp_path) -> None:
    sae, _ = _trained("topk")
    save_sae(sae, tmp_path)
    cfg = json.loads((tmp_path / CFG).read_text())
    (tmp_path / CFG).write_text(json.dumps({**cfg, "d_in": D_IN + 1}))
    with pytest.raises(ValueError, match="W_enc has shape"):
        load_sae(tmp_path)
    (tmp_path / CFG).write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(ValueError, match="not supported"):
        load_sae(tmp_path)
    (tmp_path / WEIGHTS).unlink()
    (tmp_path / CFG).unlink()
    with pytest.raises(FileNotFoundError, match=r"cfg\.json"):
        load_sae(tmp_path)


def test_geometric_median_start_ignores_an_outlier_and_bad_names_are_refused() -> None:
    from scalelab.interp.sae.base import geometric_median

    x = torch.cat([torch.randn(200, 4, generator=torch.Generator().manual_seed(0)) * 0.1 + 1.0,
                   torch.full((5, 4), 100.0)])
    assert (geometric_median(x) - 1.0).abs().max() < 0.1  # the mean is pulled to ~3.4
    sae = make_sae(SAEConfig(arch="topk", d_in=4, d_sae=8))
    sae.fit_normalisation(x, "median")
    assert torch.allclose(sae.b_dec / sae.norm_scale, geometric_median(x), atol=1e-4)
    with pytest.raises(ValueError, match="b_dec_init"):
        sae.fit_normalisation(x, "mode")
