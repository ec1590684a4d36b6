"""Ground-truth scoring under the matched rule (one best-threshold rule for features and neurons alike), and
token concept labels that ignore the leading space byte-level BPE glues onto a word."""

from __future__ import annotations

import torch

from scalelab.interp.concepts import score_against_concepts, score_matched
from scalelab.interp.text import _strip_leading_space, token_concepts


def test_matched_rule_finds_a_unit_precise_at_its_best_threshold() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(2000)  # concepts 0, 1, 2 in turn
    # Unit 0 is weakly on (0 to 1) everywhere but strongly (> 2) only on concept 1: "> 0" calls it polysemantic,
    # its best threshold finds it precise. Unit 1 fires strongly on concepts 0 and 2 alike: polysemantic either way.
    weak = torch.rand(len(labels), generator=g)
    unit0 = torch.where(labels == 1, 2 + torch.rand(len(labels), generator=g), weak)
    unit1 = torch.where(labels != 1, 2 + torch.rand(len(labels), generator=g), weak * 0)
    s = score_matched(torch.stack([unit0, unit1], 1), labels, ["a", "b", "c", "unused"], densities=(0.1, 0.33, 1.0))
    assert s["precise_units"] == 1 and s["units_scored"] == 2
    assert s["concepts_present"] == 3 and s["uncaptured_concepts"] == []  # "unused" never occurs: not a miss
    native, _ = score_against_concepts(torch.stack([unit0, unit1], 1) > 0, labels, ["a", "b", "c", "unused"])
    assert native["precise_units"] == 0  # on at any positive activation, unit 0 looks polysemantic


def test_token_labels_skip_the_leading_space() -> None:
    text = "== Daen =="
    offsets = [(0, 2), (2, 4), (4, 7), (7, 10)]  # "==", " D", "aen", " =="
    spans = [[0, 3, "template"], [3, 7, "person"], [7, 10, "template"]]
    ids = {"person": 0, "template": 1}
    assert token_concepts(offsets, spans, ids)[1] == 1  # the space wins a 1-1 tie for the template
    assert token_concepts(_strip_leading_space(offsets, text), spans, ids) == [1, 0, 0, 1]



def test_neurons_are_scored_on_both_signs() -> None:
    """A SwiGLU hidden unit's sign is arbitrary: a neuron strongly negative on exactly one concept is as precise as
    a positive one. Scoring only the positive side (the old rule) misses it; scoring both sides finds it."""
    from scalelab.interp.concepts import neuron_firing, signed

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat(500)  # concepts 0..3 in turn
    noise = 0.1 * torch.randn(len(labels), 3, generator=g)
    acts = noise.clone()
    acts[:, 0] = torch.where(labels == 2, -3 - torch.rand(len(labels), generator=g), noise[:, 0].abs())
    names = ["a", "b", "c", "d"]
    old = score_matched(acts, labels, names)
    new = score_matched(signed(acts), labels, names, paired=True)
    assert "c" in old["uncaptured_concepts"] and old["precise_units"] == 0
    assert "c" not in new["uncaptured_concepts"] and new["precise_units"] == 1
    assert new["units"] == 3 and new["negative_side_units"] >= 1
    native_old, _ = score_against_concepts(neuron_firing(acts, 0.25), labels, names)
    native_new, _ = score_against_concepts(neuron_firing(signed(acts), 0.25), labels, names, paired=True)
    assert native_old["precise_units"] == 0 and native_new["precise_units"] == 1 and native_new["units"] == 3
