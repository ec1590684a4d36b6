"""Knowledge distillation in the training loop: the KL term moves the student toward the teacher."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from conftest import make_shards
from scalelab.data.loader import iter_eval_batches
from scalelab.model.config import ModelConfig
from scalelab.model.hf import load_model, save_hf
from scalelab.model.llama import Llama
from scalelab.train.config import TrainConfig
from scalelab.train.loop import pretrain
from scalelab.train.step import Distillation, distillation_loss

VOCAB = 64
TRAIN = TrainConfig(seq_len=32, batch_size=8, lr=3e-3, tokens=12_000, eval_every=0, eval_tokens=2048,
                    ckpt_every=0, log_every=10, progress=False, device="cpu")


def _kl_to_teacher(student_dir, teacher_dir, shards) -> float:
    student, _ = load_model(student_dir)
    teacher, _ = load_model(teacher_dir)
    total, n = 0.0, 0
    with torch.no_grad():
        for x, _ in iter_eval_batches(shards, "val", 8, TRAIN.seq_len, 2048):
            s, t = student(x).reshape(-1, VOCAB), teacher(x).reshape(-1, VOCAB)
            total += float(F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="sum"))
            n += s.shape[0]
    return total / n


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distill")
    shards = make_shards(tmp, 20_000, VOCAB, seed=3)
    small = ModelConfig(depth=1, aspect_ratio=16, head_dim=16, vocab_size=VOCAB, max_seq_len=32)
    # A teacher whose predictions the data alone would never produce (random weights, large enough to give
    # peaked, context-dependent logits): only the KL term can pull a student toward it.
    torch.manual_seed(11)
    teacher = Llama(dataclasses.replace(small, depth=2, init_std=0.3))
    save_hf(teacher, tmp / "teacher")
    scratch = pretrain(small, TRAIN, shards, tmp / "scratch")
    distilled = pretrain(small, TRAIN, shards, tmp / "distilled",
                         distill=Distillation(tmp / "teacher", alpha=0.9, temperature=1.0))
    return tmp, shards, scratch, distilled


def test_distilled_student_is_closer_to_its_teacher(runs):
    tmp, shards, scratch, distilled = runs
    teacher = tmp / "teacher"
    kl_scratch = _kl_to_teacher(tmp / "scratch" / "final", teacher, shards)
    kl_distilled = _kl_to_teacher(tmp / "distilled" / "final", teacher, shards)
    # same data, steps and seed: only the KL term differs, so it must pull the student toward the teacher
    assert kl_distilled < 0.75 * kl_scratch, (kl_distilled, kl_scratch)
    assert distilled["tokens"] == scratch["tokens"]
    assert distilled["final_val_loss"] > scratch["final_val_loss"]  # it traded data fit for the teacher


def test_loss_is_cross_entropy_at_alpha_zero_and_kl_at_alpha_one():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    y = torch.randint(0, 11, (2, 5))
    ce = F.cross_entropy(s.reshape(-1, 11), y.reshape(-1))
    assert torch.allclose(distillation_loss(s, t, y, 0.0, 2.0), ce)
    assert float(distillation_loss(t, t, y, 1.0, 2.0)) == pytest.approx(0.0, abs=1e-6)
    kl = F.kl_div(F.log_softmax(s / 2, -1).reshape(-1, 11), F.log_softmax(t / 2, -1).reshape(-1, 11),
                  log_target=True, reduction="batchmean")
    assert torch.allclose(distillation_loss(s, t, y, 1.0, 2.0), 4 * kl)


def test_bad_distillation_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="alpha"):
        Distillation(tmp_path, alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        Distillation(tmp_path, temperature=0.0)
