"""Scoring primitives shared by every eval: choice log-likelihoods and greedy completions.

Multiple-choice items are scored the way lm-evaluation-harness scores them: the context and each
continuation are tokenized separately and concatenated (so a BPE merge across the boundary cannot
favour one choice), and the choice with the highest summed log-probability wins. Free-form items are
scored by greedy decoding with a KV cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def model_logits(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, V) from scalelab's model or any HF causal LM."""
    out = model(input_ids)
    return out.logits if hasattr(out, "logits") else out


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def choice_logprobs(model: torch.nn.Module, tokenizer, prompts: Sequence[str],
                    choices: Sequence[Sequence[str]], batch_size: int = 32,
                    device: str | torch.device = "cpu") -> list[list[float]]:
    """Summed log p(choice | BOS + prompt) for every choice of every item."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows: list[tuple[int, list[int], int]] = []  # (item index, ids, n continuation tokens)
    for i, (prompt, opts) in enumerate(zip(prompts, choices, strict=True)):
        ctx = bos + encode(tokenizer, prompt)
        for opt in opts:
            cont = encode(tokenizer, opt)
            rows.append((i, ctx + cont, len(cont)))
    scores: list[float] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(ids) for _, ids, _ in chunk)
        batch = torch.full((len(chunk), width), pad, dtype=torch.long)
        for j, (_, ids, _) in enumerate(chunk):
            batch[j, : len(ids)] = torch.tensor(ids)
        logp = F.log_softmax(model_logits(model, batch.to(device)).float(), dim=-1).cpu()
        for j, (_, ids, n) in enumerate(chunk):
            targets = torch.tensor(ids[len(ids) - n :])
            pos = torch.arange(len(ids) - n - 1, len(ids) - 1)
            scores.append(float(logp[j, pos, targets].sum()))
    out: list[list[float]] = [[] for _ in prompts]
    for (i, _, _), s in zip(rows, scores, strict=True):
        out[i].append(s)
    return out


def multiple_choice_accuracy(scores: Sequence[Sequence[float]], choices: Sequence[Sequence[str]],
                             answers: Sequence[str]) -> list[bool]:
    """Whether the highest-scoring choice is the answer, per item."""
    return [opts[max(range(len(s)), key=s.__getitem__)] == ans
            for s, opts, ans in zip(scores, choices, answers, strict=True)]


@torch.no_grad()
def greedy_completions(model: torch.nn.Module, tokenizer, prompts: Sequence[str], max_new_tokens: int,
                       batch_size: int = 32, add_bos: bool = True) -> list[str]:
    """Greedy continuations of each prompt (decoded, special tokens dropped)."""
    from scalelab.model.generate import generate

    bos = [tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []
    stop = [t for t in (tokenizer.convert_tokens_to_ids(x) for x in ("<|end|>", "<|bos|>")) if t is not None]
    texts: list[str] = []
    for start in range(0, len(prompts), batch_size):
        ids = [bos + encode(tokenizer, p) for p in prompts[start : start + batch_size]]
        outs = generate(model, ids, max_new_tokens=max_new_tokens, temperature=0.0, stop_ids=stop)
        texts.extend(tokenizer.decode(o, skip_special_tokens=True) for o in outs)
    return texts
