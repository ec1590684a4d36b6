"""TRL's SFTTrainer against scalelab's post-training loop on the same model, data and step count.

Measures, for each: start-up (import + trainer/dataset set-up) and seconds per optimiser step, on a
scalelab checkpoint and the world's SFT dialogues, batch 16, assistant-only loss, fp32 on CPU, the same number of
intra-op threads (`--threads`, default 1 as post-training uses). Needs `pip install trl` (not a dependency).

    .venv/bin/python benchmarks/posttrain_trl_overhead.py --model out/run/models/d4/final --world out/run/world
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def bench_trl(model_dir: Path, dialogues: list[dict], steps: int, batch: int) -> dict[str, float]:
    t0 = time.perf_counter()
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ds = Dataset.from_list([{"messages": d["messages"]} for d in dialogues])
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(output_dir=tmp, per_device_train_batch_size=batch, max_steps=steps, use_cpu=True,
                         report_to=[], assistant_only_loss=False, logging_steps=10_000, save_strategy="no",
                         learning_rate=1e-3, max_length=128, dataloader_num_workers=0, disable_tqdm=True)
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        t_setup = time.perf_counter() - t1
        t2 = time.perf_counter()
        trainer.train()
        t_train = time.perf_counter() - t2
    return {"import_s": t_import, "setup_s": t_setup, "train_s": t_train, "s_per_step": t_train / steps}


def bench_scalelab(model_dir: Path, dialogues: list[dict], steps: int, batch: int) -> dict[str, float]:
    t1 = time.perf_counter()
    from scalelab.model.lm import load_lm
    from scalelab.posttrain.data import tokenize_chat
    from scalelab.train.finetune import OptimConfig, train_sft

    pol = load_lm(model_dir, chat=True)
    rows = [tokenize_chat(pol.tokenizer, d["messages"], 128) for d in dialogues]
    t_setup = time.perf_counter() - t1
    t2 = time.perf_counter()
    train_sft(pol.model, rows, pol.tokenizer.pad_token_id,
              OptimConfig(lr=1e-3, epochs=steps * batch / len(rows), batch_size=batch))
    t_train = time.perf_counter() - t2
    return {"setup_s": t_setup, "train_s": t_train, "s_per_step": t_train / steps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--world", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    lines = (a.world / "sft.jsonl").read_text().splitlines()
    dialogues = [json.loads(x) for x in lines[: a.steps * a.batch]]
    res = {"scalelab": bench_scalelab(a.model, dialogues, a.steps, a.batch),
           "trl": bench_trl(a.model, dialogues, a.steps, a.batch)}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
