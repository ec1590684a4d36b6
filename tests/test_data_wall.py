"""The pieces of the data-wall experiments: the effective-data law's fit, token-budget shards, the world's checker
of written text, and the diversity measures."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_shards
from scalelab.data.loader import read_index
from scalelab.errors import InputError
from scalelab.presets import preset
from scalelab.reasoning.synthetic_report import synthetic_section
from scalelab.scaling.data_constrained import plan
from scalelab.scaling.diversity import distinct_ngrams, tail_coverage, tail_entities
from scalelab.scaling.effective_data import effective_data, fit_effective_data, fit_fresh
from scalelab.scaling.synthetic import doc_stats, gaps_closed, screen
from scalelab.scaling.token_budget import documents, prefix_shards, train_stream, whole_prefix
from scalelab.world import WorldDir, build_world
from scalelab.world.verify import check_text


def test_effective_data_law():
    assert effective_data(100.0, 0, 15.0) == 100.0
    assert effective_data(100.0, 3, 15.0) == pytest.approx(100 + 100 * 15 * (1 - np.exp(-3 / 15)))
    assert effective_data(100.0, 1e6, 15.0) == pytest.approx(100 * 16)  # never more than U(1 + R*)


@pytest.mark.parametrize("r_star", [3.0, 15.0])
def test_fit_recovers_r_star_from_losses_the_law_made(r_star):
    e, b, beta, u = 1.5, 40.0, 0.35, 50_000
    fresh = [{"tokens": k * u, "loss": e + b / (k * u) ** beta} for k in (1, 2, 4, 8, 16, 40)]
    rng = np.random.default_rng(0)
    repeated = [{"unique": u, "epochs": k,
                 "loss": (e + b / effective_data(u, k - 1, r_star) ** beta) * (1 + 0.001 * rng.standard_normal())}
                for k in (2, 4, 8, 16, 40)]
    law = fit_fresh([f["tokens"] for f in fresh], [f["loss"] for f in fresh])
    assert (law.E, law.B, law.beta) == pytest.approx((e, b, beta), rel=1e-3)
    fit = fit_effective_data(fresh, repeated, n_boot=50)
    assert fit["r_star"] == pytest.approx(r_star, rel=0.1)
    lo, hi = fit["r_star_ci"]
    assert lo <= fit["r_star"] * 1.05 and hi >= fit["r_star"] * 0.95 and not fit["r_star_at_bound"]
    # repeated data that lost nothing against fresh data: R* runs to its upper bound
    free = [{"unique": u, "epochs": k, "loss": e + b / (k * u) ** beta} for k in (2, 4, 8)]
    assert fit_effective_data(fresh, free, n_boot=0)["r_star_at_bound"]
    with pytest.raises(InputError, match="3 token counts"):
        fit_fresh([1, 2], [3.0, 2.0])


def test_token_budget_shards_hold_whole_documents(tmp_path):
    src = make_shards(tmp_path, 20_000, 64, seed=0)
    out = tmp_path / "slice"
    kept = prefix_shards(src, out, 5_000)
    stream = train_stream(out)
    full = train_stream(src)
    assert len(stream) == kept <= 5_000 and np.array_equal(stream, full[:kept])
    assert stream[0] == 0 and full[kept] == 0  # starts at a BOS and stops where the next document begins
    assert read_index(out)["splits"]["val"] == read_index(src)["splits"]["val"]
    assert [len(d) for d in documents(stream, 0)] == [len(d) for d in documents(full[:kept], 0)]
    with pytest.raises(InputError, match="whole document"):
        whole_prefix(full, 3, 0)


def test_plan_pairs_each_repeated_run_with_fresh_data_at_equal_steps(tmp_path):
    stream = train_stream(make_shards(tmp_path, 60_000, 64, seed=1))
    runs, unique = plan(stream, 0, 32, 4, [1, 2, 4], 0)
    by = {r.name: r for r in runs}
    assert set(by) == {"e1", "rep-e2", "fresh-e2", "rep-e4", "fresh-e4"}
    for e in (2, 4):
        rep, fresh = by[f"rep-e{e}"], by[f"fresh-e{e}"]
        assert rep.steps == fresh.steps == e * by["e1"].steps
        assert rep.slice_ == unique and fresh.slice_.tokens > unique.tokens
        assert fresh.slice_.windows >= fresh.steps * 4  # a fresh run never wraps round its slice
    with pytest.raises(InputError, match="training split has"):
        plan(stream, 0, 32, 4, [1, 100], 20_000)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("checker-world") / "world"
    build_world(preset("smoke").world, out)
    return WorldDir(out)


def test_the_world_checker_passes_the_corpus_and_catches_what_is_false(world):
    w = world.world()
    texts = [r["text"] for r in world.records("train")]
    claims = [check_text(w, t) for t in texts]
    assert sum(c.checked for c in claims) > 500 and all(c.passes for c in claims)
    person = w.entities["person"][0]
    home = person.facts["home_town"]
    other = next(t.name for t in w.entities["town"] if t.name != home)
    assert check_text(w, f"{person.name} lives in {home}.").passes
    wrong = check_text(w, f"{person.name} lives in {other}. 12+5=18. What is 3*4? 12")
    assert (wrong.facts, wrong.false_facts, wrong.sums, wrong.wrong_sums) == (1, 1, 2, 1)
    assert check_text(w, "Zzyx Qqor lives in Nowhereville.").false_facts == 1  # a name the world does not hold
    assert check_text(w, "Once upon a time it rained.").checked == 0


def test_diversity_measures(world):
    assert distinct_ngrams([[1, 2, 3, 1, 2, 3]], 3) == pytest.approx(3 / 4)
    assert distinct_ngrams([[1, 2, 3], [1, 2, 3]], 3) == 0.5 and distinct_ngrams([[1]], 3) == 0.0
    w = world.world()
    tail = tail_entities(w)
    assert tail and tail_coverage(w, []) == 0.0
    assert tail_coverage(w, [" and ".join(tail)]) == 1.0
    assert tail_coverage(w, [f"{tail[0]} was here."]) == pytest.approx(1 / len(tail))


def _arms(repeat: float, fresh: float, synthetic: float, verified: float) -> dict:
    return {name: {"loss": loss, "knowledge_gap": 0.0} for name, loss in
            (("repeat", repeat), ("synthetic", synthetic), ("verified", verified), ("fresh", fresh))}


def test_gap_closed_is_null_when_fresh_data_does_not_beat_repetition():
    arms = _arms(4.740, 5.003, 4.774, 5.245)  # the tiny run's losses: fresh worse than repeat, verified worst
    gap = gaps_closed(arms)
    assert not gap["closable"] and gap["repeat_minus_fresh"] == pytest.approx(-0.263)
    assert arms["verified"]["gap_closed"] is None and arms["synthetic"]["gap_closed"] is None
    arms = _arms(5.0, 4.99, 4.995, 4.99)  # fresh better, but by 0.2%: within the noise
    assert not gaps_closed(arms)["closable"] and arms["verified"]["gap_closed"] is None
    arms = _arms(5.0, 4.5, 4.9, 4.6)  # a real gap: shares of it
    assert gaps_closed(arms)["closable"]
    assert arms["synthetic"]["gap_closed"] == pytest.approx(0.2)
    assert arms["verified"]["gap_closed"] == pytest.approx(0.8)


def test_report_says_why_there_is_no_gap_closed():
    syn = {"arms": _arms(4.740, 5.003, 4.774, 5.245), "depth": 2, "steps": 68, "unique_tokens": 7966,
           "synthetic_tokens": 7966, "writer": "models/d5/final", "recursion": {}}
    syn["arms"]["verified"]["gap_closed"] = 1.9196  # a summary from before the rule: re-read from the losses
    md = "\n".join(synthetic_section(syn))
    assert "fresh data did not beat repetition here, so there is no gap to close" in md.lower()
    assert "1.920" not in md
    syn = {**syn, "arms": _arms(5.0, 4.5, 4.9, 4.6)}
    md = "\n".join(synthetic_section(syn))
    assert "no gap to close" not in md and "| verified | 4.600 | 0.000 | – | 0.800 |" in md


def test_verified_documents_pass_the_checker_and_the_figures_separate_sampled_from_kept(world):
    w = world.world()
    person = w.entities["person"][0]
    home = person.facts["home_town"]
    other = next(t.name for t in w.entities["town"] if t.name != home)
    texts = [f"{person.name} lives in {home}. 2+3=5.", f"{person.name} lives in {other}.", "It rained all day.",
             "12+5=18. 3+4=7."]
    rows, kept = screen(w, texts, [10, 10, 10, 10], verified=True, kept=0, budget=1000)
    assert [r["kept"] for r in rows] == [True, False, True, False] and kept == 20
    assert all(r["false"] == 0 for r in rows if r["kept"])
    stats = doc_stats(rows)
    assert stats["kept_false_claim_rate"] == 0.0  # kept documents pass the checker: no false claim among them
    assert stats["sampled_false_claim_rate"] == pytest.approx(2 / 5)  # 2 false of 5 claims sampled
    assert stats["kept_no_claim_fraction"] == 0.5 and stats["pass_rate"] == 0.5  # the rain passes trivially
    rows, kept = screen(w, texts, [10, 10, 10, 10], verified=False, kept=0, budget=25)
    assert [r["kept"] for r in rows] == [True, True, True, False] and kept == 30  # as written, up to the budget
    assert doc_stats(rows)["kept_false_claim_rate"] == pytest.approx(1 / 3)  # 1 false of the 3 claims kept
