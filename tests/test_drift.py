"""Drift: paired tests on synthetic data (planted difference found, null false-positive rate ≈ α, Holm by hand),
version parsing, and identical versions giving identical outputs on a tiny model, through the CLI too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import random_smoke_model
from scalelab.cli import app
from scalelab.evals.drift import (
    Version,
    compare_outcomes,
    drift,
    holm,
    mcnemar_exact,
    paired_bootstrap_ci,
    parse_version,
    run_suite,
    sign_flip_p,
)

ALPHA = 0.05


def null_pair(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable paired outcomes: each item has its own difficulty, both versions draw from it independently."""
    p = rng.uniform(0.1, 0.9, size=n)
    return (rng.random(n) < p).astype(float), (rng.random(n) < p).astype(float)


def test_mcnemar_and_holm_by_hand():
    assert mcnemar_exact([0] * 6 + [1] * 4, [1] * 6 + [1] * 4) == pytest.approx(2 * 0.5 ** 6)
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]) == 1.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_planted_difference_is_detected():
    rng = np.random.default_rng(0)
    a, b = null_pair(rng, 200)
    worse = b.copy()
    ones = np.flatnonzero(worse == 1)
    worse[rng.choice(ones, size=len(ones) // 4, replace=False)] = 0  # B forgets a quarter of what it knew
    report = compare_outcomes({"fact_recall": a, "honesty": a}, {"fact_recall": worse, "honesty": a})
    row = {r.eval: r for r in report.rows}
    assert row["fact_recall"].real and row["fact_recall"].test == "mcnemar_exact"
    assert row["fact_recall"].ci[1] < 0  # the whole interval lies below zero
    assert not row["honesty"].real and report.any_real
    assert "fact_recall" in report.verdict()


def test_null_false_positive_rate_is_about_alpha():
    rng = np.random.default_rng(1)
    draws = 2000
    flagged = sum(mcnemar_exact(*null_pair(rng, 150)) < ALPHA for _ in range(draws))
    # The exact test is conservative (discrete): at most α, and not far below it at this size.
    assert 0.02 <= flagged / draws <= ALPHA + 0.012
    cont = sum(sign_flip_p(x := rng.normal(size=60), x + rng.normal(size=60), n_perm=1000, seed=k) < ALPHA
               for k in range(400))
    assert 0.02 <= cont / 400 <= 0.085


def test_holm_keeps_the_familywise_rate_under_alpha():
    rng = np.random.default_rng(2)
    trials = 300
    any_flag = 0
    for _ in range(trials):
        pairs = [null_pair(rng, 120) for _ in range(5)]
        report = compare_outcomes({f"e{i}": a for i, (a, _) in enumerate(pairs)},
                                  {f"e{i}": b for i, (_, b) in enumerate(pairs)}, n_boot=50)
        any_flag += report.any_real
    assert any_flag / trials <= ALPHA + 0.03


def test_bootstrap_interval_covers_the_true_difference():
    rng = np.random.default_rng(3)
    a = rng.normal(size=400)
    lo, hi = paired_bootstrap_ci(a, a + 0.3 + 0.5 * rng.normal(size=400))
    assert lo < 0.3 < hi and hi - lo < 0.25


def test_unpaired_inputs_are_refused():
    with pytest.raises(ValueError, match="same items"):
        compare_outcomes({"x": [1, 0]}, {"x": [1, 0, 1]})
    with pytest.raises(ValueError, match="only one version"):
        compare_outcomes({"x": [1]}, {"y": [1]})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    random_smoke_model(out)
    return out


def test_parse_version(run, tmp_path):
    model = run / "models" / "d1" / "final"
    v = parse_version(model, ["system_prompt=Be brief.", "temperature=0.7", "seed=3"])
    assert v == Version(model, "Be brief.", 0.7, 1.0, 3)
    spec = tmp_path / "v.yaml"
    spec.write_text(f"model: {model}\ntop_p: 0.9\n")
    assert parse_version(spec).top_p == 0.9
    with pytest.raises(ValueError, match="known: system_prompt"):
        parse_version(model, ["temp=1"])
    with pytest.raises(ValueError, match="top_p"):
        parse_version(model, ["top_p=0"])


def test_identical_versions_give_identical_outputs(run):
    v = parse_version(run / "models" / "d1" / "final")
    report, ra, rb = drift(v, v, run / "world", limit=4, backend="direct")
    assert ra.outputs == rb.outputs and ra.outcomes == rb.outcomes
    assert all(r.outputs_differ == 0 and r.p == 1.0 and not r.real for r in report.rows)
    # sampling at temperature 1 with another seed does change the replies: the comparison is not vacuous
    hot = run_suite(Version(v.model_dir, temperature=1.0, seed=7), run / "world", limit=4, backend="direct")
    assert hot.outputs["honesty"] != ra.outputs["honesty"]


def test_identical_versions_through_the_inspect_suite(run, tmp_path):
    from scalelab.evals.capability.catalogue import EVAL_NAMES

    v = parse_version(run / "models" / "d1" / "final")
    report, ra, rb = drift(v, v, run / "world", limit=2, log_dir=tmp_path)
    assert set(ra.outcomes) == set(EVAL_NAMES) and ra.outputs == rb.outputs and ra.outcomes == rb.outcomes
    assert all(r.outputs_differ == 0 and not r.real for r in report.rows)
    assert list((tmp_path / "a").glob("*.eval"))  # Inspect's own logs, one per eval
    with pytest.raises(ValueError, match="backend direct"):
        run_suite(Version(v.model_dir, temperature=1.0, top_p=0.9), run / "world", limit=2)


def test_drift_cli(run, tmp_path):
    model = str(run / "models" / "d1" / "final")
    res = CliRunner().invoke(app, ["drift", model, model, "--limit", "2", "--backend", "direct",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "No real difference" in res.output
    assert json.loads((tmp_path / "drift.json").read_text())["any_real"] is False
    bad = CliRunner().invoke(app, ["drift", model, model, "--set-b", "seed=x"])
    assert bad.exit_code == 2 and "seed" in bad.output
    bad = CliRunner().invoke(app, ["drift", model, model, "--backend", "vibes"])
    assert bad.exit_code == 2 and "inspect, direct" in bad.output
