"""Token-level data for post-training: chats with an assistant-only loss mask, and prompt pools.

Supervised fine-tuning trains only on what the assistant says: the user's words and the system
prompt are context, not targets. The mask is found with the tokenizer's own chat template (so any HF
tokenizer with a template works, not only scalelab's): for each assistant turn the template renders
the conversation up to that turn with and without the reply, and the tokens whose characters fall
between the two renderings are the reply's (closing tag included, so the model learns to stop).

Prompt pools for SL-CAI, RL-CAI and character training come from the world's training dialogues
(`sft.jsonl`), never from the held-out eval sets, and carry the dialogue kind and the reference
reply so the oracle feedback model can judge them exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from scalelab.chat_format import Message
from scalelab.errors import InputError
from scalelab.posttrain.paraphrase import paraphrase_request
from scalelab.train.finetune import IGNORE
from scalelab.world.reader import WorldDir


@dataclass(frozen=True)
class PromptItem:
    """One user request with what a good assistant says: `kind` is the world's dialogue kind."""

    messages: list[Message]  # the conversation so far, ending with the user's turn
    kind: str  # fact_qa | benign | harmful | sycophancy | unknown
    reference: str  # the world's good reply


def render(tokenizer, messages: list[Message], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def _bos(tokenizer) -> list[int]:
    # scalelab documents start with BOS in pretraining; an imported model's template may add its own.
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def tokenize_chat(tokenizer, messages: list[Message], max_len: int) -> tuple[list[int], list[int]]:
    """(input ids, labels) of a whole chat, labels IGNORE everywhere except the assistant's tokens."""
    text = render(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(render(tokenizer, messages[:i], add_generation_prompt=True))
        end = len(render(tokenizer, messages[: i + 1]))
        if text[:end] != render(tokenizer, messages[: i + 1]):
            raise InputError("the tokenizer's chat template does not render a conversation as the concatenation "
                             "of its turns; SFT masking needs a prefix-stable template")
        spans.append((start, end))
    ids = _bos(tokenizer) + list(enc["input_ids"])
    labels = [IGNORE] * len(_bos(tokenizer))
    for tok_id, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        inside = any(s <= a and b <= e and b > a for s, e in spans)
        labels.append(tok_id if inside else IGNORE)
    return ids[:max_len], labels[:max_len]


def tokenize_response(tokenizer, messages: list[Message], response: str, max_len: int) -> tuple[list[int], list[int]]:
    """(ids, labels) of prompt + one assistant reply; only the reply (and its closing tag) is labelled."""
    return tokenize_chat(tokenizer, [*messages, {"role": "assistant", "content": response}], max_len)


def prompt_pool(world_dir: Path, kinds: tuple[str, ...], n: int, seed: int,
                paraphrase: float = 0.0) -> list[PromptItem]:
    """Up to `n` first-turn requests of the given kinds from the training dialogues, kinds interleaved.

    A fraction `paraphrase` of them is re-asked in another phrasing (`posttrain.paraphrase`), so the
    stages that train on these prompts do not teach one phrasing per intent.
    """
    by_kind: dict[str, list[PromptItem]] = {k: [] for k in kinds}
    for d in WorldDir(world_dir).dialogues():
        if d["kind"] not in by_kind:
            continue
        msgs = d["messages"]
        first_user = next(i for i, m in enumerate(msgs) if m["role"] == "user")
        by_kind[d["kind"]].append(PromptItem(list(msgs[: first_user + 1]), d["kind"], msgs[first_user + 1]["content"]))
    rng = random.Random(f"scalelab-posttrain-prompts:{seed}")
    for kind, items in by_kind.items():
        rng.shuffle(items)
        for i, it in enumerate(items):
            if rng.random() < paraphrase:
                last = {**it.messages[-1], "content": paraphrase_request(it.messages[-1]["content"], kind, rng)}
                items[i] = PromptItem([*it.messages[:-1], last], it.kind, it.reference)
    out: list[PromptItem] = []
    while len(out) < n and any(by_kind.values()):
        for k in kinds:
            if by_kind[k] and len(out) < n:
                out.append(by_kind[k].pop())
    return out
