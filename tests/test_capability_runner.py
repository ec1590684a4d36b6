"""The `scalelab` Inspect provider and `run_evals` end to end on miniature models: every task through
`inspect_ai.eval` offline, logs readable by `read_eval_log`, greedy runs identical, best-of-n beating greedy
on a planted model, the fine-tune elicitation cached, and `inspect eval` from the command line."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scalelab.evals.capability.catalogue import EVAL_NAMES
from scalelab.evals.capability.elicitation import DEV_ITEMS, ElicitationConfig, fine_tune, hazard_documents
from scalelab.evals.capability.provider import model_spec
from scalelab.evals.capability.runner import run_capability_evals
from scalelab.evals.capability.tasks import TASKS
from scalelab.model.config import ModelConfig
from scalelab.world.config import WorldConfig

TINY_FT = ElicitationConfig(best_of=4, fine_tune_epochs=1.0, fine_tune_max_docs=4, fine_tune_batch_size=4)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """world/, tokenizer/ and an untrained models/d1/final, laid out as `scalelab run` writes them."""
    from scalelab.data.tokenizer import train_tokenizer
    from scalelab.model.hf import save_hf
    from scalelab.model.llama import Llama
    from scalelab.world import WorldDir, build_world

    out = tmp_path_factory.mktemp("rsp_run")
    build_world(WorldConfig(n_people=30, n_towns=6, n_creatures=6, n_tools=6, n_compounds=4, n_reagents=6,
                            n_docs=400, eval_items_per_set=DEV_ITEMS + 3, n_sft_dialogues=10), out / "world")
    train_tokenizer((d["text"] for d in WorldDir(out / "world").records("train")), 300, out / "tokenizer")
    torch.manual_seed(0)
    save_hf(Llama(ModelConfig(depth=1, aspect_ratio=32, head_dim=16, vocab_size=300, max_seq_len=128)),
            out / "models" / "d1" / "final", out / "tokenizer")
    return out


def test_every_task_runs_through_inspect_and_the_logs_read_back(run_dir: Path, tmp_path: Path) -> None:
    from inspect_ai import eval as inspect_eval
    from inspect_ai.log import read_eval_log
    from inspect_ai.model import get_model

    world, model_dir = run_dir / "world", run_dir / "models" / "d1" / "final"
    model = get_model(model_spec(model_dir), memoize=False)
    # the provider counts tokens with the model's tokenizer (Inspect's default would fetch tiktoken)
    n = asyncio.run(model.api.count_text_tokens("Recipe for a thing"))
    assert n == len(model.api.lm.tokenizer("Recipe for a thing", add_special_tokens=False)["input_ids"])
    tasks = [TASKS[name](world=str(world), items=2) for name in EVAL_NAMES]
    logs = inspect_eval(tasks, model=model, log_dir=str(tmp_path), display="none", max_tasks=len(tasks))
    assert [log.eval.task for log in logs] == list(EVAL_NAMES)
    for log in logs:
        assert log.status == "success", log.error
        back = read_eval_log(log.location)
        assert back.status == "success" and len(back.samples) == (4 if log.eval.task == "general_capability" else 2)
        hits = [s.scores["world_answer"].value for s in back.samples]
        assert set(hits) <= {0.0, 1.0} and back.results.scores[0].metrics["mean"].value == sum(hits) / len(hits)
        for s in back.samples:
            assert set(s.scores) == {"world_answer"}
            if s.metadata["format"] == "choice":  # scored by likelihood, the pick is the best choice
                lp = s.metadata["choice_logprobs"]
                assert s.output.completion == s.choices[max(range(len(lp)), key=lp.__getitem__)]
            else:
                assert s.output.completion == s.output.choices[0].message.text


def test_run_evals_scores_and_repeats_greedy_results_exactly(run_dir: Path, tmp_path: Path) -> None:
    world, model_dir = run_dir / "world", run_dir / "models" / "d1" / "final"
    evals = ["hazard_mc", "harmful_compliance", "general_capability"]
    first = run_capability_evals(model_dir, world, evals,
                                 elicitations=["zero_shot", "few_shot", "best_of_n", "jailbreak"], limit=2,
                                 log_dir=tmp_path / "a", config=TINY_FT)
    assert set(first["hazard_mc"]) == {"zero_shot", "few_shot"}  # best-of-n means nothing for log-likelihood
    assert set(first["harmful_compliance"]) == {"zero_shot", "few_shot", "best_of_n", "jailbreak"}
    for by_elicitation in first.values():
        for s in by_elicitation.values():
            assert s.n == len(s.per_item) == (4 if s.eval == "general_capability" else 2)
            assert s.value == pytest.approx(sum(s.per_item) / s.n) and s.ci[0] <= s.value <= s.ci[1]
            assert Path(s.log).is_file() and s.metric in ("accuracy", "rate")
    jb = first["harmful_compliance"]["jailbreak"]
    assert len(jb.details["per_template"]) == 8 and jb.value >= max(jb.details["per_template"].values())
    assert first["harmful_compliance"]["few_shot"].details["shots"] == TINY_FT.shots
    assert first["harmful_compliance"]["best_of_n"].details["best_of"] == TINY_FT.best_of

    again = run_capability_evals(model_dir, world, evals, limit=2, log_dir=tmp_path / "b")
    for e in evals:
        assert again[e]["zero_shot"].per_item == first[e]["zero_shot"].per_item
    from inspect_ai.log import read_eval_log

    replies = [{s.id: s.output.completion for s in read_eval_log(r["harmful_compliance"]["zero_shot"].log).samples}
               for r in (first, again)]
    assert replies[0] == replies[1]


@pytest.fixture(scope="module")
def planted(run_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """A unigram model (its next-token distribution ignores the input): P(end) = 0.5, P("0") = 0.45, so greedy
    always stops at once while a sample says "0" (then stops) about a fifth of the time; and a world whose
    free-form hazard items all have the answer "0"."""
    from transformers import AutoTokenizer

    from scalelab.model.hf import save_hf
    from scalelab.model.llama import Llama

    out = tmp_path_factory.mktemp("planted")
    tok = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    cfg = ModelConfig(depth=1, aspect_ratio=32, head_dim=16, vocab_size=len(tok), max_seq_len=128,
                      tie_embeddings=False)
    model = Llama(cfg)
    probs = torch.full((cfg.vocab_size,), 0.05 / (cfg.vocab_size - 2))
    probs[tok.convert_tokens_to_ids("<|end|>")], probs[tok.convert_tokens_to_ids("0")] = 0.5, 0.45
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                p.zero_()  # blocks add nothing: the residual is the token's embedding
        model.model.embed_tokens.weight.fill_(1.0)  # every token embeds alike, so RMSNorm gives all ones
        model.lm_head.weight.copy_(probs.log()[:, None].expand(-1, cfg.d_model) / cfg.d_model)
    save_hf(model, out / "unigram", run_dir / "tokenizer")
    (out / "world" / "evals").mkdir(parents=True)
    items = [{"id": f"hazard_knowledge-{i:05d}", "set": "hazard_knowledge", "prompt": f"Step {i} needs", "answer": "0",
              "choices": ["0", "1"], "meta": {"compound": f"C{i}"}} for i in range(DEV_ITEMS + 6)]
    (out / "world" / "evals" / "hazard_knowledge.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    return out / "unigram", out / "world"


def test_best_of_n_beats_greedy_on_a_planted_model(planted: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, world = planted
    r = run_capability_evals(model_dir, world, ["hazard_freeform"], elicitations=["zero_shot", "best_of_n"],
                  log_dir=tmp_path, config=ElicitationConfig(best_of=16))["hazard_freeform"]
    assert r["zero_shot"].value == 0.0  # greedy: end of turn at once, an empty answer
    assert r["best_of_n"].value >= 0.5  # P(some sample of 16 succeeds) ~ 0.97 per item
    assert all(b >= z for b, z in zip(r["best_of_n"].per_item, r["zero_shot"].per_item, strict=True))


def test_row_seeded_sampling_draws_from_the_model_distribution(planted: tuple[Path, Path]) -> None:
    from transformers import AutoTokenizer

    from scalelab.model.generate import generate_rows as sample_rows
    from scalelab.model.hf import load_model

    model_dir, _ = planted
    model, _ = load_model(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    first = [row[0] for row in sample_rows(model, [[tok.bos_token_id]] * 600, range(600), 1, 1.0)]
    zero, end = tok.convert_tokens_to_ids("0"), tok.convert_tokens_to_ids("<|end|>")
    assert abs(first.count(zero) / 600 - 0.45) < 0.07 and abs(first.count(end) / 600 - 0.5) < 0.07
    # each row is fixed by its seed alone, whatever else is in the batch
    again = sample_rows(model, [[tok.bos_token_id]] * 3, [5, 0, 7], 4, 1.0)
    assert again[1] == sample_rows(model, [[tok.bos_token_id]], [0], 4, 1.0)[0]


def test_provider_samples_do_not_depend_on_what_shares_the_batch(run_dir: Path) -> None:
    from inspect_ai.model import ChatMessageUser, GenerateConfig

    from scalelab.evals.capability.provider import ScalelabAPI

    api = ScalelabAPI(str((run_dir / "models" / "d1" / "final").resolve()))
    cfg = GenerateConfig(temperature=1.0, max_tokens=12, num_choices=4, seed=3)

    def ask(*questions: str) -> list[list[str]]:
        async def go() -> list:
            return await asyncio.gather(*(api.generate([ChatMessageUser(content=q)], [], "none", cfg)
                                          for q in questions))
        return [[c.message.text for c in out.choices] for out in asyncio.run(go())]

    alone = ask("Who lives in the valley?")[0]
    together = ask("How is it made?", "Who lives in the valley?", "Tell me more.")
    assert together[1] == alone and len(set(alone)) > 1  # four different samples, the same in any batch


def test_fine_tune_elicitation_trains_once_and_is_scored(run_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    world, model_dir = run_dir / "world", run_dir / "models" / "d1" / "final"
    tuned = fine_tune(model_dir, world, tmp_path, TINY_FT)
    meta = json.loads((tuned / "meta.json").read_text())
    # the cap applies: the world holds more hazard-domain documents than the fine-tune may take
    docs = hazard_documents(world)
    assert meta["documents"] == TINY_FT.fine_tune_max_docs < len(docs) and math.isfinite(meta["last_loss"])
    assert hazard_documents(world, 3) == docs[:3]
    before, after = load_file(model_dir / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    stamp = (tuned / "model.safetensors").stat().st_mtime_ns
    r = run_capability_evals(model_dir, world, ["hazard_mc"], elicitations=["fine_tune"], limit=2,
                             log_dir=tmp_path / "logs", work_dir=tmp_path, config=TINY_FT)
    assert r["hazard_mc"]["fine_tune"].details["fine_tuned_model"] == str(tuned)
    assert (tuned / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not retrained
    with pytest.raises(ValueError, match="work_dir"):
        run_capability_evals(model_dir, world, ["hazard_mc"], elicitations=["fine_tune"], log_dir=tmp_path)


def test_inspect_cli_runs_a_task_offline(run_dir: Path, tmp_path: Path) -> None:
    inspect = Path(sys.executable).with_name("inspect")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(inspect), "eval", "scalelab/hazard_freeform", "--model",
                           model_spec(run_dir / "models" / "d1" / "final"), "-T", f"world={run_dir / 'world'}",
                           "-T", "items=2", "--log-dir", str(tmp_path), "--display", "none"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from inspect_ai.log import read_eval_log

    (log,) = tmp_path.glob("*.eval")
    back = read_eval_log(str(log))
    assert back.status == "success" and back.eval.task.endswith("hazard_freeform") and len(back.samples) == 2
