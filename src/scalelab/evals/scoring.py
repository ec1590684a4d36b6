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

from scalelab.model.lm import LM


@torch.no_grad()
def choice_logprobs(lm: LM, prompts: Sequence[str], choices: Sequence[Sequence[str]],
                    batch_size: int = 32) -> list[list[float]]:
    """Summed log p(choice | BOS + prompt) for every choice of every item."""
    rows: list[tuple[int, list[int], int]] = []  # (item index, ids, n continuation tokens)
    for i, (prompt, opts) in enumerate(zip(prompts, choices, strict=True)):
        ctx = lm.encode(prompt, bos=True)
        for opt in opts:
            cont = lm.encode(opt)
            rows.append((i, ctx + cont, len(cont)))
    scores: list[float] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(ids) for _, ids, _ in chunk)
        batch = torch.full((len(chunk), width), lm.pad_id, dtype=torch.long)
        for j, (_, ids, _) in enumerate(chunk):
            batch[j, : len(ids)] = torch.tensor(ids)
        logp = F.log_softmax(lm.logits(batch.to(lm.device)), dim=-1).cpu()
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


def greedy_completions(lm: LM, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 32) -> list[str]:
    """Greedy continuations of each prompt after BOS (decoded, special tokens dropped)."""
    return lm.complete(prompts, max_new_tokens, temperature=0.0, batch_size=batch_size)
