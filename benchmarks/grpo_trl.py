"""scalelab's GRPO against TRL's `GRPOTrainer`: same start model, prompts, group size, steps and objective.

Both run the same settings: `prompts` problems per step × `group` samples each at temperature 1, reward 1 when
the task's checker accepts the reply, advantages relative to the group and divided by its std, token-level
loss normalisation (TRL's default `loss_type="dapo"`; scalelab's `loss_norm="token"`), clip 0.2, no KL, one
policy update per batch, constant learning rate, AdamW (0.9, 0.99), no weight decay, gradient clip 1.0, one CPU
thread, fp32. Each step's problems are the same for both (fresh training-split problems). Reported: seconds per
step, the mean reward over the first and last steps, and the held-out pass@1 / greedy of each final model by
the same evaluator (`reasoning.evaluate`). Needs `pip install -e ".[trl]"` (TRL is not a dependency).

    .venv/bin/python benchmarks/grpo_trl.py --model RUN/reasoning/arithmetic/sft --task arithmetic --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from scalelab.model.lm import load_lm, save_lm
from scalelab.reasoning.config import GRPOConfig, PassKConfig, TaskConfig
from scalelab.reasoning.evaluate import evaluate_task
from scalelab.reasoning.grpo import run_grpo
from scalelab.reasoning.rollout import prompt_ids
from scalelab.reasoning.tasks import Problem, Task, make_task


def problems_for(task: Task, steps: int, prompts: int, seed: int) -> list[Problem]:
    """The problems run_grpo draws for these settings (its pool, in the order it pops them)."""
    return task.mixed("train", steps * prompts, seed + 17)


def bench_scalelab(model_dir: Path, task: Task, args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    lm = load_lm(model_dir, chat=True)
    cfg = GRPOConfig(steps=args.steps, prompts=args.prompts, group_size=args.group, lr=args.lr, inner_steps=1,
                     loss_norm="token", scale_rewards=True, clip_low=0.2, clip_high=0.2, kl_beta=0.0)
    t0 = time.perf_counter()
    res = run_grpo(lm, task, cfg, max_new_tokens=args.max_new_tokens, max_len=args.max_new_tokens + 64,
                   seed=args.seed)
    seconds = time.perf_counter() - t0
    out = Path(tempfile.mkdtemp(prefix="grpo-scalelab-"))
    save_lm(lm, out)
    rewards = [s["reward"] for s in res["steps"]]
    return {"train_s": seconds, "s_per_step": seconds / args.steps, "rewards": rewards}, out


def bench_trl(model_dir: Path, task: Task, args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    t0 = time.perf_counter()
    from datasets import Dataset  # TRL and its datasets load only for this benchmark
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    t_import = time.perf_counter() - t0
    lm = load_lm(model_dir, chat=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    problems = problems_for(task, args.steps, args.prompts, args.seed)[: args.steps * args.prompts]
    by_key = {p.key: p for p in problems}
    text = [lm.chat_text([{"role": "user", "content": p.question}]) for p in problems]
    # the same prompt tokens as scalelab's: TRL tokenizes a plain-string prompt with the tokenizer's BOS
    assert tok(text[0])["input_ids"] == prompt_ids(lm, problems[0].question), "prompt tokens differ"
    ds = Dataset.from_list([{"prompt": t, "key": p.key} for t, p in zip(text, problems, strict=True)])
    rewards: list[float] = []

    def reward(completions: list[str], key: list[str], **_: Any) -> list[float]:
        return [float(task.check(by_key[k], c)) for c, k in zip(completions, key, strict=True)]

    class Log(TrainerCallback):
        def on_log(self, _args: Any, _state: Any, _control: Any, logs: dict[str, float] | None = None,
                   **_: Any) -> None:
            if logs and "reward" in logs:
                rewards.append(float(logs["reward"]))

    out = Path(tempfile.mkdtemp(prefix="grpo-trl-"))
    t1 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = TRLConfig(output_dir=str(out / "trainer"), use_cpu=True, report_to=[], max_steps=args.steps,
                       per_device_train_batch_size=args.prompts * args.group, num_generations=args.group,
                       max_completion_length=args.max_new_tokens, temperature=1.0, learning_rate=args.lr,
                       lr_scheduler_type="constant", loss_type="dapo", scale_rewards="group", beta=0.0,
                       epsilon=0.2, num_iterations=1, adam_beta2=0.99, weight_decay=0.0, max_grad_norm=1.0,
                       logging_steps=1, save_strategy="no", disable_tqdm=True, seed=args.seed,
                       shuffle_dataset=False, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=ds, processing_class=tok,
                          callbacks=[Log()])
    t_setup = time.perf_counter() - t1
    t2 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t2
    trainer.model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"import_s": t_import, "setup_s": t_setup, "train_s": seconds, "s_per_step": seconds / args.steps,
            "rewards": rewards}, out


def held_out(model_dir: Path, task: Task, args: argparse.Namespace) -> dict[str, Any]:
    lm = load_lm(model_dir, chat=True)
    ev = evaluate_task(lm, task, PassKConfig(problems=args.eval_problems, ks=[1, 4]),
                       max_new_tokens=args.max_new_tokens, difficulties=task.train_difficulties)
    return {"greedy": ev["greedy"], "pass_at_1": ev["pass_at_k"]["1"], "pass_at_1_ci": ev["pass_at_k_ci"]["1"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--task", default="arithmetic")
    ap.add_argument("--world", type=Path, default=None, help="world directory (multihop needs it)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--eval-problems", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = make_task(args.task, TaskConfig(), args.world)
    load = os.getloadavg()
    results: dict[str, Any] = {"settings": vars(args) | {"model": str(args.model), "world": str(args.world),
                                                          "out": None}, "load_before": load}
    results["start"] = held_out(args.model, task, args)
    for name, bench in (("scalelab", bench_scalelab), ("trl", bench_trl)):
        torch.manual_seed(args.seed)
        stats, folder = bench(args.model, task, args)
        stats["held_out"] = held_out(folder, task, args)
        results[name] = stats
        print(name, json.dumps({k: v for k, v in stats.items() if k != "rewards"}), flush=True)
    results["load_after"] = os.getloadavg()
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
