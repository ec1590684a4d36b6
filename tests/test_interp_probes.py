"""Probes, universality and SAE-scaling fits on controlled data: a concept planted in one direction is found at
the right layer and not by the shuffled-label control; a model matched with itself is perfectly universal and
with an unrelated model is not; the power-law fit recovers a planted exponent."""

from __future__ import annotations

import pytest
import torch

from scalelab.errors import InputError
from scalelab.interp.config import ProbeConfig
from scalelab.interp.probes import balanced_accuracy, fit_probe, run_probes, token_baseline
from scalelab.interp.sae import SAEConfig, make_sae
from scalelab.interp.sae_scaling import power_law_fit
from scalelab.interp.sites import parse_site, read_site
from scalelab.interp.universality import compare, unit_activations
from scalelab.model.config import ModelConfig
from scalelab.model.llama import Llama
from scalelab.world import all_concepts


def test_fit_probe_separates_classes_and_balanced_accuracy_counts_the_rare_one() -> None:
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(600, generator=g) < 0.1).long()  # a rare class, as hazard steps are
    x = torch.randn(600, 8, generator=g) + 5.0 * y[:, None] * torch.eye(8)[0]
    probe = fit_probe(x[:400], y[:400], 2)
    assert balanced_accuracy(probe.predict(x[400:]), y[400:], 2) > 0.9
    assert balanced_accuracy(torch.zeros(200, dtype=torch.long), y[400:], 2) == 0.5  # "always other" is chance
    assert token_baseline(torch.tensor([1, 1, 2]), torch.tensor([0, 0, 1]), torch.tensor([1, 2, 3]), 2).tolist() == [
        0, 1, 0]


def _model(seed: int, vocab: int = 40) -> Llama:
    torch.manual_seed(seed)
    return Llama(ModelConfig(depth=2, aspect_ratio=16, head_dim=16, vocab_size=vocab, max_seq_len=32)).eval()


def test_probes_find_a_token_spelled_concept_and_the_control_does_not() -> None:
    concepts = all_concepts()
    ids = torch.randint(1, 40, (40, 32), generator=torch.Generator().manual_seed(1))
    labels = torch.full_like(ids, -1)
    kinds = ["person", "town", "creature"]
    # Tokens 1..30 name entities; which kind is fixed by the token (as a name spells its entity's kind).
    named = ids <= 30
    labels[named] = torch.tensor([concepts.index(kinds[int(t) % 3]) for t in ids[named]])
    res = run_probes(_model(0), ids, labels, concepts, ProbeConfig(groups=["entity_type", "hazard_step"], rows=40))
    ent = res["groups"]["entity_type"]
    assert [row["layer"] for row in ent["layers"]] == [-1, 0, 1] and ent["chance"] == pytest.approx(1 / 3, abs=1e-3)
    emb = ent["layers"][0]
    assert emb["accuracy"] > 0.9 and emb["control"] < 0.6 and emb["selectivity"] > 0.3
    assert ent["token_baseline"] > 0.9  # every test token type was seen in training
    assert "skipped" in res["groups"]["hazard_step"]  # no hazard tokens: one class only
    with pytest.raises(InputError, match="out of range"):
        run_probes(_model(0), ids, labels, concepts, ProbeConfig(layers=[5]))


def test_universality_of_a_model_with_itself_and_with_another() -> None:
    ids = torch.randint(1, 40, (12, 32), generator=torch.Generator().manual_seed(2))
    a, b = _model(0), _model(1)
    x = read_site(a, parse_site("resid_post.1", 2), ids).reshape(-1, 32)
    sae = make_sae(SAEConfig(arch="topk", d_in=32, d_sae=64, k=4))
    sae.fit_normalisation(x)
    units_a = unit_activations(a, sae, "resid_post.1", ids)
    concepts = ["x", "y"]
    labels = (ids % 2).long()
    same = compare(units_a, units_a, labels, concepts, min_fires=3)
    assert same["features"]["median"] == pytest.approx(1.0) and same["neurons"]["median"] == pytest.approx(1.0)
    assert same["features"]["labels"]["agree"] == 1.0 and same["tokens"] == 12 * 31
    other = compare(units_a, unit_activations(b, sae, "resid_post.1", ids), labels, concepts, min_fires=3)
    assert other["neurons"]["median"] < 0.9
    with pytest.raises(InputError, match="same rows"):
        compare(units_a, unit_activations(b, sae, "resid_post.1", ids[:6]))


def test_power_law_fit_recovers_a_planted_exponent() -> None:
    xs = [256, 512, 1024, 2048]
    fit = power_law_fit(xs, [3.0 * x**-0.25 * (1.01 if i % 2 else 0.99) for i, x in enumerate(xs)])
    assert fit["alpha"] == pytest.approx(0.25, abs=0.02) and fit["interval"][0] < 0.25 < fit["interval"][1]
    assert fit["r2"] > 0.95
    assert power_law_fit([1.0], [1.0]) == {"points": 1}
