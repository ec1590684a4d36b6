"""`scalelab scale --preset smoke` end to end: fit.json with every field, hold-outs, forecasts, tiers, reuse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scalelab.config import ConfigError
from scalelab.pipeline import SCALE_STAGES, run_all
from scalelab.presets import preset
from scalelab.scaling.analysis import analyse_sweep, load_forecast_table
from scalelab.scaling.config import ScalingConfig
from scalelab.scaling.runs import ScalingFitError
from scalelab.scaling.sweep import sweep_spec
from scalelab.scaling.tiers import frontier, pick_tiers

FIT_KEYS = {"fit", "entropy_floor", "E_minus_floor", "holdout", "optimal_exponents", "forecasts", "tiers",
            "distillation", "chinchilla", "isoflop", "kaplan", "forecast_table", "runs", "param_kind", "excluded"}
SUMMARY_KEYS = {"fit", "entropy_floor", "holdout", "optimal_exponents", "forecasts", "tiers"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("scale")
    cfg = preset("smoke")
    cfg.scaling.n_bootstrap = 10
    logs: list[str] = []
    summary = run_all(cfg, out, log=logs.append, only=SCALE_STAGES)
    return out, summary, logs


def test_fit_json_has_every_field(smoke):
    out, summary, _ = smoke
    fit = json.loads((out / "scaling" / "fit.json").read_text())
    assert fit.keys() >= FIT_KEYS
    for k in ("E", "A", "B", "alpha", "beta"):
        assert math.isfinite(fit["fit"][k])
        lo, hi = fit["fit"]["intervals"][k]
        assert lo <= hi
    assert fit["entropy_floor"] == pytest.approx(summary["world"]["entropy_floor_nats_per_token"])
    assert fit["E_minus_floor"] == pytest.approx(fit["fit"]["E"] - fit["entropy_floor"])
    assert {"a", "b", "intervals", "approach3_a", "approach3_b"} <= fit["optimal_exponents"].keys()
    assert len(fit["tiers"]) == 3 and [t["tier"] for t in fit["tiers"]] == ["small", "balanced", "large"]
    for t in fit["tiers"]:
        assert t["latency_ms_per_token"] > 0 and t["throughput_tokens_per_s"] > 0
        assert t["inference_flops_per_token"] > 0
    d = fit["distillation"]
    assert d["tokens"] == next(r["tokens"] for r in fit["runs"] if r["name"] == fit["tiers"][0]["run"])
    assert summary["scaling"].keys() >= SUMMARY_KEYS
    for png in fit["plots"]:
        assert (out / png).stat().st_size > 0
    assert len(fit["plots"]) == 5
    assert "## Scaling laws" in (out / "report.md").read_text()


def test_holdouts_are_validated_not_fitted(smoke):
    out, _, _ = smoke
    fit = json.loads((out / "scaling" / "fit.json").read_text())
    held = [r for r in fit["runs"] if r["holdout"]]
    fitted = [r for r in fit["runs"] if not r["holdout"]]
    assert len(held) >= 1 and fit["fit"]["n_runs"] == len(fitted)
    assert min(r["budget"] for r in held) >= 4 * max(r["budget"] for r in fitted) * 0.999
    assert len({r["budget"] for r in fitted}) >= 3
    assert all(sum(r["budget"] == b for r in fitted) >= 4 for b in {r["budget"] for r in fitted})
    by_name = {r["name"]: r for r in held}
    for h in fit["holdout"]:
        actual = by_name[h["name"]]["final_val_loss"]
        assert h["actual_loss"] == actual
        assert h["error_pct"] == pytest.approx(100 * (h["predicted_loss"] - actual) / actual)
        assert {"params", "tokens", "predicted_loss", "actual_loss", "error_pct"} <= h.keys()


def test_forecast_is_loadable_from_fit_json(smoke):
    out, _, _ = smoke
    table = load_forecast_table(out / "scaling" / "fit.json")
    name = sorted(table.fits)[0]
    budget = json.loads((out / "scaling" / "fit.json").read_text())["holdout_budget"]
    f = table.forecast(name, 4 * budget)
    assert 0.0 <= f.interval[0] <= f.accuracy <= f.interval[1] <= 1.0 or math.isclose(f.interval[0], f.accuracy)
    with pytest.raises(ScalingFitError, match="fitted evals"):
        table.forecast("no_such_eval", budget)


def test_rerun_reuses_every_run(smoke):
    out, _, _ = smoke
    logs: list[str] = []
    cfg = preset("smoke")
    cfg.scaling.n_bootstrap = 10
    run_all(cfg, out, log=logs.append, only=SCALE_STAGES)
    trained = [line for line in logs if line.startswith("[scaling:") and "running" in line]
    assert trained == [], trained


def test_parallel_sweep_trains_the_same_models_as_sequential(smoke, tmp_path):
    """Two worker processes give bit-identical runs to the sequential sweep (training is deterministic)."""
    from scalelab.registry import Registry
    from scalelab.scaling.planner import SweepPlan
    from scalelab.scaling.sweep import parallel_train, plan_for, sweep_workers
    from scalelab.stage import Context

    out, summary, _ = smoke
    cfg = preset("smoke")
    for name in ("shards", "tokenizer"):
        (tmp_path / name).symlink_to(out / name)
    full = plan_for(cfg, int(summary["shards"]["train_tokens"]))
    cheapest = sorted(full.runs, key=lambda r: r.flops)[:3]
    plan = SweepPlan(runs=tuple(cheapest), budgets=full.budgets, holdout_budget=full.holdout_budget,
                     spec=full.spec)
    ctx = Context.standalone(cfg, tmp_path, log=lambda _: None)
    parallel_train(ctx, plan, workers=2)
    for run in cheapest:
        par = json.loads((tmp_path / "scaling" / "runs" / run.name / "result.json").read_text())
        seq = json.loads((out / "scaling" / "runs" / run.name / "result.json").read_text())
        assert par["final_val_loss"] == seq["final_val_loss"], run.name
    assert len(Registry(tmp_path / "runs.sqlite").runs()) == 3
    assert sweep_workers(0, "cpu", 14) >= 1 and sweep_workers(5, "cpu", 2) == 2
    with pytest.raises(ConfigError, match=r"scaling\.workers"):
        sweep_workers(-1, "cpu", 3)


def _records(n_fitted: int, loss: float = 3.0) -> list[dict]:
    rows = []
    for i in range(n_fitted):
        n, d = 1e5 * 2 ** i, 1e6 / 2 ** (i % 3)
        rows.append({"name": f"r{i}", "params": n, "non_embedding_params": n / 2, "tokens": d,
                     "train_flops": 6 * n * d, "final_val_loss": loss + 10 / n ** 0.3 + 20 / d ** 0.3,
                     "budget": 6 * n * d, "holdout": False, "evals": None})
    return rows


def test_too_few_runs_and_nan_losses_get_clear_errors():
    with pytest.raises(ScalingFitError, match="at least 6"):
        analyse_sweep(_records(5), entropy_floor=None)
    rows = _records(7)
    rows[0]["final_val_loss"] = float("nan")
    rows[1]["final_val_loss"] = float("nan")
    with pytest.raises(ScalingFitError, match="diverged"):
        analyse_sweep(rows, entropy_floor=None)


def test_diverged_runs_are_excluded_and_listed():
    rows = _records(9)
    rows[2]["final_val_loss"] = float("nan")
    fit = analyse_sweep(rows, entropy_floor=2.9, n_bootstrap=5)
    assert [e["name"] for e in fit["excluded"]] == ["r2"]
    assert "diverged" in fit["excluded"][0]["reason"]
    assert fit["fit"]["n_runs"] == 8


def test_tiers_differ_in_size_even_when_one_size_wins_several_budgets():
    """Frontier = d2 at three budgets + d3 at the hold-out: the family adds d1 (the smaller neighbour)."""
    def row(name, params, budget, loss):
        return {"name": name, "params": params, "budget": budget, "final_val_loss": loss}

    rows = [row("b1_d1", 36, 1, 2.05), row("b1_d2", 92, 1, 1.75), row("b1_d3", 181, 1, 1.84),
            row("b2_d1", 36, 2, 1.90), row("b2_d2", 92, 2, 1.55), row("b2_d3", 181, 2, 1.59),
            row("b3_d2", 92, 3, 1.50), row("b3_d3", 181, 3, 1.52), row("hold_d3", 181, 9, 1.25)]
    tiers = pick_tiers(rows, ["small", "balanced", "large"])
    assert [(n, r["name"]) for n, r in tiers] == [("small", "b2_d1"), ("balanced", "b3_d2"), ("large", "hold_d3")]


def test_bad_scaling_settings_are_refused():
    with pytest.raises(ConfigError, match="shards"):
        sweep_spec(ScalingConfig(), 0)
    with pytest.raises(ConfigError, match="max_epochs"):
        sweep_spec(ScalingConfig(max_epochs=0), 1000)
    with pytest.raises(ScalingFitError, match="param_kind"):
        analyse_sweep(_records(8), entropy_floor=None, param_kind="embedding")
    with pytest.raises(ConfigError, match="three distinct names"):
        pick_tiers(_records(8), ["small", "large"])
    with pytest.raises(FileNotFoundError, match="scalelab scale"):
        load_forecast_table(Path("/nonexistent/fit.json"))


def test_frontier_keeps_the_best_run_per_budget():
    rows = [{"name": "a", "budget": 1.0, "final_val_loss": 3.0}, {"name": "b", "budget": 1.0, "final_val_loss": 2.5},
            {"name": "c", "budget": 2.0, "final_val_loss": float("nan")},
            {"name": "d", "budget": 2.0, "final_val_loss": 2.4}]
    assert [r["name"] for r in frontier(rows)] == ["b", "d"]


def test_a_corpus_too_small_for_a_sweep_skips_the_stage_in_run_but_fails_scale():
    from types import SimpleNamespace

    from scalelab.scaling.stage import run_scaling
    from scalelab.scaling.sweep import plan_for

    cfg = preset("smoke")
    logs: list[str] = []
    section = run_scaling(SimpleNamespace(cfg=cfg, log=logs.append), {"shards": {"train_tokens": 500}})
    assert "no ladder" in section["skipped"] and "skipped" in logs[0]
    with pytest.raises(ConfigError, match="widen the token range"):
        plan_for(cfg, 500)
