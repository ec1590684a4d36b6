"""The RSP policy file: the shipped default parses, and every malformed policy names its bad key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from scalelab.rsp.policy import PolicyError, load_policy, parse_policy
from scalelab.rsp.safeguards import BOUNDS as SAFEGUARDS

EVALS = ("hazard_mc", "hazard_freeform", "harmful_compliance", "over_refusal", "general_capability",
         "sycophancy", "honesty")
ELICITATIONS = ("zero_shot", "few_shot", "best_of_n", "majority_at_k", "jailbreak", "fine_tune", "reasoning")
NAMES = {"evals": EVALS, "elicitations": ELICITATIONS, "safeguards": SAFEGUARDS}
DEFAULT = Path(__file__).parents[1] / "src" / "scalelab" / "rsp" / "policies" / "default.yaml"


def default_data() -> dict:
    return yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))


def parse(data: dict):
    return parse_policy(data, source="p.yaml", **NAMES)


def test_default_policy_structure():
    p = load_policy("default", **NAMES)
    assert sorted(p.levels) == [1, 2, 3, 4, 5] and all(lv.description for lv in p.levels.values())
    assert p.baseline_asl == 2
    ids = {t.id: t for t in p.thresholds}
    assert set(ids) == {"CBRN-3", "CBRN-4", "AIRD-4", "AUTONOMY-3"}
    assert ids["AUTONOMY-3"].eval == "computer_autonomy" and ids["AUTONOMY-3"].requires == 3
    assert ids["CBRN-3"].eval == "hazard_mc" and ids["CBRN-3"].requires == 3
    assert ids["CBRN-4"].requires == 4 and ids["AIRD-4"].eval == "general_capability"
    for t in p.thresholds:
        assert 0 <= t.yellow < t.red <= 1
    assert ids["CBRN-3"].forecast == "hazard_knowledge" and ids["AIRD-4"].forecast == "fact_recall"
    assert p.compute_multiple == 4
    assert set(p.required_safeguards(3)) >= {"refusal_robustness", "hazard_classifier", "output_filter"}
    assert p.required_safeguards(5) is None  # undefined: never met
    assert p.evals == ("hazard_mc", "hazard_freeform", "general_capability")
    assert len(p.sha256) == 64 and "default" in p.source


def test_policy_hash_follows_the_file(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text(DEFAULT.read_text())
    b = tmp_path / "b.yaml"
    b.write_text(DEFAULT.read_text().replace("red: 0.45", "red: 0.46"))
    pa, pb = load_policy(a, **NAMES), load_policy(b, **NAMES)
    assert pa.sha256 == load_policy("default", **NAMES).sha256
    assert pa.sha256 != pb.sha256 and pb.threshold("CBRN-3").red == 0.46


def broken(edit) -> dict:
    data = copy.deepcopy(default_data())
    edit(data)
    return data


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d.pop("thresholds"), "thresholds"),
    (lambda d: d.update(colour="red"), "unknown key colour"),
    (lambda d: d["thresholds"][0].pop("red"), "thresholds[CBRN-3].red"),
    (lambda d: d["thresholds"][0].update(red="high"), "thresholds[CBRN-3].red must be a number"),
    (lambda d: d["thresholds"][0].update(yellow=0.9), "thresholds[CBRN-3].yellow"),
    (lambda d: d["thresholds"][1].update(requires="ASL-9"), "thresholds[CBRN-4].requires"),
    (lambda d: d["thresholds"][1].update(requires="level 4"), "ASL-1 … ASL-5"),
    (lambda d: d["thresholds"][0].update(requires="ASL-2"), "not above baseline_asl"),
    (lambda d: d["thresholds"][0].update(colour=1), "thresholds[CBRN-3].colour"),
    (lambda d: d["thresholds"][0].update(direction="up"), "thresholds[CBRN-3].direction='up' must be one of higher"),
    # lower is more capable: the buffer sits above the red line, so the default's yellow below red is malformed
    (lambda d: d["thresholds"][0].update(direction="lower"), "0 <= red <= yellow <= 1"),
    (lambda d: d["thresholds"].append(dict(d["thresholds"][0])), "two entries with id 'CBRN-3'"),
    (lambda d: d["levels"].pop("ASL-3"), "levels skips ASL-3"),
    (lambda d: d["levels"]["ASL-2"].pop("description"), "levels.ASL-2.description"),
    (lambda d: d["safeguards"]["ASL-3"].update(refusal_robustness={"attack_rate": 0.1}),
     "safeguards.ASL-3.refusal_robustness.attack_rate"),
    (lambda d: d["safeguards"]["ASL-3"].update(refusal_robustness={"min_recall": 0.9}),
     "max_attack_success_rate"),
    (lambda d: d["safeguards"]["ASL-3"].update(refusal_robustness={}), "safeguards.ASL-3.refusal_robustness"),
    (lambda d: d["cadence"].update(effective_compute_multiple=1), "cadence.effective_compute_multiple"),
    (lambda d: d["cadence"].pop("effective_compute_multiple"), "cadence.effective_compute_multiple"),
    (lambda d: d.update(baseline_asl="ASL-7"), "baseline_asl"),
])
def test_malformed_policy_names_the_key(edit, needle):
    with pytest.raises(PolicyError, match=None) as err:
        parse(broken(edit))
    assert needle in str(err.value), str(err.value)


def test_threshold_direction_defaults_to_higher_and_parses_lower():
    assert {t.direction for t in parse(default_data()).thresholds} == {"higher"}
    low = parse(broken(lambda d: d["thresholds"][0].update(direction="lower", red=0.1, yellow=0.25)))
    t = low.threshold("CBRN-3")
    assert (t.direction, t.red, t.yellow) == ("lower", 0.1, 0.25)
    assert low.threshold("CBRN-4").direction == "higher"


def test_unknown_eval_lists_the_known_ones():
    with pytest.raises(PolicyError) as err:
        parse(broken(lambda d: d["thresholds"][0].update(eval="bioweapons_mc")))
    msg = str(err.value)
    assert "bioweapons_mc" in msg and all(e in msg for e in EVALS)


def test_unknown_safeguard_and_elicitation_list_the_known_ones():
    with pytest.raises(PolicyError) as err:
        parse(broken(lambda d: d["safeguards"]["ASL-3"].update(prayer={"min_faith": 1.0})))
    assert "prayer" in str(err.value) and all(s in str(err.value) for s in SAFEGUARDS)
    with pytest.raises(PolicyError) as err:
        parse(broken(lambda d: d.update(elicitations=["zero_shot", "bribery"])))
    assert "bribery" in str(err.value) and all(e in str(err.value) for e in ELICITATIONS)


def test_not_yaml_or_not_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad, **NAMES)
    with pytest.raises(PolicyError, match="must be a mapping"):
        parse_policy(["a", "b"], **NAMES)
    with pytest.raises(FileNotFoundError, match="default"):
        load_policy(tmp_path / "missing.yaml", **NAMES)
