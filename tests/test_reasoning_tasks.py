"""The reasoning tasks: exact checkers that reject malformed and wrong answers, traces the checker accepts, and
held-out instances that never reach training data (nor, for arithmetic, the world's pretraining corpus)."""

from __future__ import annotations

import json
import random
import re
from fractions import Fraction

import pytest

from scalelab.errors import InputError
from scalelab.presets import preset
from scalelab.reasoning.config import SFTConfig, TaskConfig
from scalelab.reasoning.rollout import verify_question
from scalelab.reasoning.sft import sft_pairs
from scalelab.reasoning.tasks import CORRECT, MALFORMED, WRONG, make_task
from scalelab.reasoning.tasks.expression import ParseError, evaluate
from scalelab.reasoning.verify import verdict_of, verification_reply
from scalelab.world import build_world

TASKS = ("arithmetic", "multihop", "countdown")


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("reasoning-world") / "world"
    build_world(preset("smoke").world, out)
    return out


def _task(name, world_dir):
    return make_task(name, TaskConfig(), world_dir)


@pytest.mark.parametrize("name", TASKS)
def test_traces_are_right_and_every_bad_reply_is_rejected(name, world_dir):
    task = _task(name, world_dir)
    rng = random.Random(0)
    for d in task.difficulties():
        for p in task.problems("train", d, 20, 0) + task.problems("heldout", d, 5, 0):
            clean, slipped = task.trace(p, rng), task.trace(p, rng, mistake=True)
            assert task.grade(p, clean) == CORRECT
            assert task.grade(p, slipped) == CORRECT and " wait, " in slipped
            assert task.grade(p, task.direct(p)) == CORRECT
            wrong = task.wrong_answer(p, rng)
            assert task.grade(p, f"{task.steps(p, rng, False)}\nAnswer: {wrong}") == WRONG
            # malformed: no answer line, two answer lines, an empty answer, a value of the wrong kind
            assert task.grade(p, task.steps(p, rng, False)) == MALFORMED
            assert task.grade(p, f"{clean}\nAnswer: {p.answer}") == MALFORMED
            assert task.grade(p, "Answer: ") == MALFORMED
            assert task.grade(p, "Answer: ???") == MALFORMED
            assert task.grade(p, f"The answer is {p.answer}") == MALFORMED


def test_arithmetic_checker_reads_integers_exactly():
    task = make_task("arithmetic")
    p = next(q for q in task.problems("train", 3, 50, 0) if int(q.answer) >= 10)
    assert task.grade(p, f"Answer: {p.answer}") == CORRECT
    assert task.grade(p, f"Answer: 0{p.answer}") == MALFORMED  # a leading zero is not how a number is written
    assert task.grade(p, f"Answer: {p.answer}.0") == MALFORMED
    assert task.grade(p, f"Answer: {int(p.answer) + 1}") == WRONG
    assert task.grade(p, f"Answer: -{p.answer}") == WRONG


def test_countdown_checker_needs_each_number_exactly_once():
    task = make_task("countdown")
    p = next(q for q in task.problems("train", 3, 50, 0))
    nums = p.data["numbers"]
    assert task.grade(p, f"Answer: {p.answer}") == CORRECT
    assert task.grade(p, f"Answer: {p.data['target']}") == WRONG  # the target alone uses none of the numbers
    assert task.grade(p, f"Answer: ({p.answer})+{nums[0]}-{nums[0]}") == WRONG  # a number used three times
    # another expression reaching the target with the same numbers is right too: the same numbers reordered
    a, b, c = nums
    for expr in (f"{a}+{b}+{c}", f"{a}*{b}*{c}", f"{c}+{b}+{a}"):
        value = evaluate(expr)[0]
        assert task.grade(p, f"Answer: {expr}") == (CORRECT if value == p.data["target"] else WRONG)
    assert task.grade(p, "Answer: 3+*4") == MALFORMED
    assert task.grade(p, "Answer: (3+4") == MALFORMED
    assert task.grade(p, "Answer: import os") == MALFORMED


def test_expression_parser_is_exact():
    assert evaluate("7/2*2") == (Fraction(7), [7, 2, 2])
    assert evaluate(" (1+2)*3 - 4/4 ")[0] == 8
    assert evaluate("2-3-4")[0] == -5  # left to right
    for bad in ("1/0", "1/(2-2)", "01+2", "1 2", "", "()", "2**3"):
        with pytest.raises(ParseError):
            evaluate(bad)


def test_multihop_chain_is_read_off_the_world(world_dir):
    task = _task("multihop", world_dir)
    p = task.problems("train", 3, 1, 0)[0]
    name = p.data["start"]
    for fact in p.data["path"]:
        name = task.world.by_name[name].facts[fact]
    assert name == p.answer and p.question.count(" of ") == 3


@pytest.mark.parametrize("name", TASKS)
def test_heldout_instances_never_reach_training_data(name, world_dir):
    task = _task(name, world_dir)
    for d in task.difficulties():
        train = task.problems("train", d, 300, 0) + task.problems("train", d, 300, 1)
        held = task.problems("heldout", d, 300, 0)
        assert held, f"no held-out {name} problems at difficulty {d}"
        assert not {p.key for p in train} & {p.key for p in held}
        assert not any(task.is_heldout(p) for p in train) and all(task.is_heldout(p) for p in held)
    held_questions = {p.question for d in task.difficulties() for p in task.problems("heldout", d, 300, 0)}
    for question, _ in sft_pairs(task, SFTConfig(problems=600, verify_fraction=0.5), seed=0):
        assert question.split("\nProposed answer:")[0] not in held_questions


def test_heldout_arithmetic_is_absent_from_the_pretraining_corpus(world_dir):
    task = make_task("arithmetic")
    corpus = "\n".join(json.loads(line)["text"] for line in (world_dir / "train.jsonl").read_text().splitlines())
    problems = re.findall(r"(?<![0-9])([0-9]+)([+\-*])([0-9]+)(?:=|\? )", corpus)
    assert len(problems) > 100  # the smoke corpus does hold arithmetic
    for d in task.train_difficulties:
        held = task.problems("heldout", d, 300, 0)
        for p in held:
            assert (str(p.data["a"]), p.data["op"], str(p.data["b"])) not in set(problems)
    seen = {(a, op, b) for a, op, b in problems}
    trainable = [p for d in task.train_difficulties for p in task.problems("train", d, 300, 0)]
    assert any((str(p.data["a"]), p.data["op"], str(p.data["b"])) in seen for p in trainable)


def test_verification_traces_give_the_right_verdict(world_dir):
    task = _task("multihop", world_dir)
    rng = random.Random(1)
    for p in task.problems("train", 2, 10, 0):
        for proposed, verdict in ((p.answer, "right"), (task.wrong_answer(p, rng), "wrong")):
            reply = verification_reply(task, p, proposed, rng)
            assert verdict_of(reply) == verdict and task.grade(p, reply) == CORRECT
            assert verify_question(p.question, proposed).startswith(p.question)


def test_bad_dials_are_refused():
    with pytest.raises(InputError, match="harder"):
        make_task("arithmetic", TaskConfig(arithmetic_digits=[1, 2], arithmetic_digits_harder=2))
    with pytest.raises(InputError, match="ops"):
        make_task("arithmetic", TaskConfig(arithmetic_ops=["^"]))
    with pytest.raises(InputError, match="--world"):
        make_task("multihop")
    with pytest.raises(InputError, match="unknown reasoning task"):
        make_task("sudoku")
