"""Toy Models of Superposition: the model's gradients, the readings of W, and the three experiments' findings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scalelab.interp.superposition import (
    SuperpositionConfig,
    run_superposition,
    section_superposition,
    superposition_summary,
)
from scalelab.interp.superposition.analysis import (
    feature_dimensionality,
    geometry_2d,
    phase_of,
    sticky_stats,
)
from scalelab.interp.superposition.config import STICKY_FRACTIONS
from scalelab.interp.superposition.toy import (
    TrainSpec,
    expected_loss,
    loss_grads,
    quadrature,
    sample_features,
    train_stack,
)

GEO = {"threshold": 0.5, "antipodal_cos": 0.9, "orthogonal_cos": 0.1, "polygon_tol_deg": 10.0}
PHASE = {"threshold": 0.5, "antipodal_cos": 0.9, "orthogonal_cos": 0.1}


def _unit_columns(degrees: list[float], norm: float = 1.0) -> np.ndarray:
    rad = np.radians(degrees)
    return norm * np.stack([np.cos(rad), np.sin(rad)])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("superposition")
    return out, run_superposition(out, SuperpositionConfig.smoke(), progress=False)


# --- the model --------------------------------------------------------------------------------------------

def test_sampled_features_have_the_requested_density_and_uniform_values() -> None:
    x = sample_features(torch.tensor([0.05, 0.5, 1.0]), 4000, 10, torch.Generator().manual_seed(0))
    active = (x > 0).float().mean(dim=(1, 2))
    assert torch.allclose(active, torch.tensor([0.05, 0.5, 1.0]), atol=0.01)
    values = x[x > 0]
    assert values.max() < 1 and abs(values.mean().item() - 0.5) < 0.01


def test_hand_written_gradients_match_autograd() -> None:
    gen = torch.Generator().manual_seed(1)
    x = sample_features(torch.tensor([0.2, 0.9]), 64, 7, gen)
    W = torch.randn(2, 3, 7, generator=gen).requires_grad_(True)
    b = (0.1 * torch.randn(2, 7, generator=gen)).requires_grad_(True)
    imp = torch.rand(2, 7, generator=gen)
    expected_loss(W, b, x, imp).sum().backward()
    gW, gb = loss_grads(W.detach(), b.detach(), x, (2 * imp / x.shape[1]).unsqueeze(1))
    assert torch.allclose(gW, W.grad, atol=1e-5) and torch.allclose(gb, b.grad, atol=1e-5)


def test_quadrature_gives_the_expected_loss_of_sampled_batches() -> None:
    dens = torch.tensor([0.05, 0.4, 1.0])
    xq, wq = quadrature(2, 16, dens)
    assert torch.allclose(wq.sum(1), torch.ones(3))
    gen = torch.Generator().manual_seed(2)
    W, b, imp = torch.randn(3, 1, 2, generator=gen), 0.1 * torch.randn(3, 2, generator=gen), torch.rand(3, 2) + 0.5
    exact = expected_loss(W, b, xq.expand(3, -1, -1), imp, wq)
    sampled = expected_loss(W, b, sample_features(dens, 200_000, 2, gen), imp)
    assert torch.allclose(exact, sampled, rtol=0.02)


def test_training_is_deterministic_and_keeps_the_lowest_loss_restart() -> None:
    spec = TrainSpec(steps=50, batch_size=64, lr=1e-2, eval_batch=512, seed=3)
    args = (5, 2, torch.tensor([1.0, 0.1]), torch.ones(2, 5), 3, spec)
    a, b = train_stack(*args), train_stack(*args)
    assert torch.equal(a.W, b.W) and torch.equal(a.loss, b.loss)
    assert torch.equal(a.loss, a.restart_losses.min(dim=1).values)
    assert torch.equal(a.restart, a.restart_losses.argmin(dim=1))


# --- reading W --------------------------------------------------------------------------------------------

def test_dimensionality_is_one_for_a_dedicated_feature_and_shared_in_an_antipodal_pair() -> None:
    W = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 0.7, -0.7, 0.0]])  # f0 alone, f1/f2 antipodal, f3 absent
    D = feature_dimensionality(W)
    np.testing.assert_allclose(D, [1.0, 0.5, 0.5, 0.0], atol=1e-9)
    pentagon = feature_dimensionality(_unit_columns([0, 72, 144, 216, 288], norm=1.3))
    np.testing.assert_allclose(pentagon, 0.4, atol=1e-9)
    rand = feature_dimensionality(np.random.default_rng(0).normal(size=(6, 40)))
    assert rand.min() >= 0 and rand.max() <= 1 + 1e-12


def test_geometry_labels_come_from_the_angles() -> None:
    assert geometry_2d(_unit_columns([0, 72, 144, 216, 288]), **GEO)["label"] == "pentagon"
    assert geometry_2d(_unit_columns([0, 60, 144, 216, 288]), **GEO)["label"] != "pentagon"
    four = np.concatenate([_unit_columns([10, 190, 70, 250]), np.zeros((2, 1))], axis=1)
    geo = geometry_2d(four, **GEO)
    assert geo["label"] == "antipodal pairs" and geo["represented"] == [0, 1, 2, 3]
    assert sorted(map(sorted, geo["pairs"])) == [[0, 1], [2, 3]]
    dense = np.concatenate([_unit_columns([30, 120]), _unit_columns([0, 0, 0], norm=0.05)], axis=1)
    assert geometry_2d(dense, **GEO)["label"] == "orthogonal pair"
    assert geometry_2d(_unit_columns([0, 45]), **GEO)["label"] != "orthogonal pair"


def test_phase_of_the_second_feature() -> None:
    assert phase_of(np.array([[1.0, -0.9]]), **PHASE) == "superposition"
    assert phase_of(np.array([[1.0, 0.02]]), **PHASE) == "not represented"
    assert phase_of(np.array([[0.01, 1.0]]), **PHASE) == "dedicated dimension"
    assert phase_of(np.array([[1.0, 0.0], [0.0, 1.0]]), **PHASE) == "dedicated dimension"
    assert phase_of(np.array([[1.0, 0.8]]), **PHASE) == "other"


def test_sticky_stats_count_and_chance() -> None:
    st = sticky_stats(np.array([1.0, 0.74, 0.5, 0.2, 0.0]), STICKY_FRACTIONS, 0.05)
    assert st["within"] == 3 and st["per_fraction"]["3/4"] == 1 and st["per_fraction"]["1/2"] == 1
    # Windows of ±0.05 around 1, 3/4, 2/3, 1/2, 2/5, 3/8 cover [0.95,1], [0.617,0.8], [0.45,0.55], [0.325,0.45].
    assert math.isclose(st["chance"], 0.05 + 0.18333 + 0.1 + 0.125, abs_tol=1e-3)


# --- the experiments --------------------------------------------------------------------------------------

def test_dense_keeps_the_two_most_important_features_orthogonal(smoke: tuple[Path, dict]) -> None:
    dense = next(r for r in smoke[1]["geometry"]["per_sparsity"] if r["sparsity"] == 0.0)
    assert dense["features_represented"]["which"] == [0, 1]
    assert dense["geometry"] == "orthogonal pair"
    assert all(abs(g - 90) < 10 or abs(g - 270) < 10 for g in dense["neighbour_gaps_deg"])


def test_very_sparse_represents_all_five_as_a_pentagon(smoke: tuple[Path, dict]) -> None:
    sparse = smoke[1]["geometry"]["per_sparsity"][-1]
    assert sparse["sparsity"] >= 0.95
    assert sparse["features_represented"]["count"] == 5 and sparse["geometry"] == "pentagon"
    assert all(abs(g - 72) < 8 for g in sparse["neighbour_gaps_deg"])
    np.testing.assert_allclose(sparse["dimensionality"], 0.4, atol=0.05)
    assert smoke[1]["geometry"]["pentagon_sparsity"] <= sparse["sparsity"]


def test_phase_diagram_has_the_papers_structure(smoke: tuple[Path, dict]) -> None:
    phase = smoke[1]["phase"]
    grid = phase["grid"]  # grid[i][j]: relative importance i ascending, density j ascending
    assert phase["shape"] == [len(grid), len(grid[0])]
    assert grid[-1][0] == "superposition"  # sparse, second feature important
    assert grid[0][-1] == "not represented"  # dense, second feature unimportant
    assert grid[-1][-1] == "dedicated dimension"  # dense, second feature important
    assert phase["counts"]["superposition"] > 0 and phase["counts"]["other"] == 0
    assert sum(phase["counts"].values()) == len(grid) * len(grid[0])


def test_dimensionality_experiment(smoke: tuple[Path, dict]) -> None:
    dim = smoke[1]["dimensionality"]
    for r in dim["per_sparsity"]:
        assert len(r["dimensionality"]) == dim["n_features"]
        assert min(r["dimensionality"]) >= 0 and max(r["dimensionality"]) <= 1 + 1e-9
    lines = [r["dims_per_feature"] for r in dim["per_sparsity"]]
    assert lines[0] > 0.9 and lines[-1] < 0.5  # dense: a dimension per feature; sparse: features share them
    assert 0 <= dim["sticky"]["fraction"] <= 1


def test_results_json_summary_and_report(smoke: tuple[Path, dict], tmp_path: Path) -> None:
    out, results = smoke
    saved = json.loads((out / "results.json").read_text())
    assert {"config", "geometry", "phase", "dimensionality", "figures", "seconds"} <= saved.keys()
    for row in saved["geometry"]["per_sparsity"] + saved["dimensionality"]["per_sparsity"]:
        assert {"sparsity", "features_represented", "dimensionality"} <= row.keys()
        assert {"count", "which", "threshold_norm"} <= row["features_represented"].keys()
    assert "geometry" in saved["geometry"]["per_sparsity"][0]
    assert {"grid", "densities", "relative_importances", "counts"} <= saved["phase"].keys()
    for name in saved["figures"].values():
        assert (out / name).stat().st_size > 1000
    summary = superposition_summary(saved)
    assert summary["phase_grid_shape"] == saved["phase"]["shape"]
    assert summary["pentagon_sparsity"] == saved["geometry"]["pentagon_sparsity"]
    assert set(summary["geometry"]) == {str(r["sparsity"]) for r in saved["geometry"]["per_sparsity"]}
    md = section_superposition(results, tmp_path)
    assert "pentagon" in md
    for name in saved["figures"].values():
        assert f"]({name})" in md and (tmp_path / name).exists()
