"""The policy being post-trained: load, save, sample chat replies, and score replies' log-probabilities.

A scalelab checkpoint (or any HF Llama folder, such as SmolLM2 saved from GGUF) loads into scalelab's
`Llama`, which samples through the KV-cached `model.generate`; any other HF causal LM loads through
`transformers` and samples with its own `generate`. Everything downstream sees one interface: a model
whose forward returns logits, its tokenizer with a chat template, and the folder it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from scalelab.data.chat import Message
from scalelab.evals.scoring import model_logits
from scalelab.posttrain.data import IGNORE, render


@dataclass
class Policy:
    model: torch.nn.Module
    tokenizer: object
    source: Path  # the folder it was loaded from (tokenizer files are copied from here on save)

    @property
    def is_scalelab(self) -> bool:
        from scalelab.model.llama import Llama

        return isinstance(self.model, Llama)


def load_policy(path: Path | str, device: str = "cpu") -> Policy:
    """Load a HF checkpoint folder with a chat template as a trainable policy (fp32)."""
    from transformers import AutoConfig, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a HF checkpoint folder (no config.json); pass a model's final/ "
                                "directory, e.g. out/run/models/d4/final")
    tok = AutoTokenizer.from_pretrained(path)
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"the tokenizer in {path} has no chat template; post-training needs one to render chats")
    if AutoConfig.from_pretrained(path).model_type == "llama":
        from scalelab.model.hf import load_model

        model, _ = load_model(path, device=device)
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return Policy(model.eval(), tok, path)


def save_policy(policy: Policy, out_dir: Path) -> Path:
    """Write the policy as a HF folder (weights, config, tokenizer with its chat template)."""
    out_dir = Path(out_dir)
    if policy.is_scalelab:
        from scalelab.model.hf import save_hf

        return save_hf(policy.model, out_dir, tokenizer_dir=policy.source)
    policy.model.save_pretrained(out_dir)
    policy.tokenizer.save_pretrained(out_dir)
    return out_dir


def _stop_ids(tok) -> list[int]:
    # generation.Generator stops only on scalelab's <|end|>/<|bos|>; an imported model (SmolLM2: <|im_end|>)
    # needs its own end-of-turn token, hence this path rather than Generator.complete.
    ids = [tok.convert_tokens_to_ids(t) for t in ("<|end|>", "<|bos|>")]
    ids = [i for i in ids if i is not None and i != tok.unk_token_id]
    return ids or ([tok.eos_token_id] if tok.eos_token_id is not None else [])


@torch.no_grad()
def respond(policy: Policy, conversations: Sequence[list[Message]], max_new_tokens: int = 48,
            temperature: float = 0.0, seed: int | None = 0, batch_size: int = 64, top_p: float = 1.0) -> list[str]:
    """The assistant's next reply to each conversation (greedy at temperature 0; nucleus sampling below top_p 1)."""
    tok = policy.tokenizer
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    prompts = [bos + tok(render(tok, c, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
               for c in conversations]
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        step_seed = None if seed is None else seed + start
        if policy.is_scalelab:
            from scalelab.model.generate import generate

            ids = generate(policy.model, chunk, max_new_tokens, temperature=temperature, top_p=top_p,
                           stop_ids=_stop_ids(tok), seed=step_seed)
        else:
            ids = _hf_generate(policy, chunk, max_new_tokens, temperature, step_seed, top_p)
        out.extend(tok.decode(i, skip_special_tokens=True).strip() for i in ids)
    return out


def _hf_generate(policy: Policy, prompts: list[list[int]], max_new_tokens: int, temperature: float,
                 seed: int | None, top_p: float = 1.0) -> list[list[int]]:
    tok, model = policy.tokenizer, policy.model
    if seed is not None:
        torch.manual_seed(seed)
    width = max(len(p) for p in prompts)
    device = next(model.parameters()).device
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts], device=device)
    attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    gen = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=max_new_tokens,
                         do_sample=temperature > 0, temperature=temperature or None,
                         top_p=top_p if temperature > 0 and top_p < 1.0 else None, top_k=None,
                         pad_token_id=tok.pad_token_id, eos_token_id=_stop_ids(tok))
    stops = set(_stop_ids(tok))
    out = []
    for row in gen[:, width:].tolist():
        cut = next((k for k, t in enumerate(row) if t in stops), len(row))
        out.append(row[:cut])
    return out


def pad_batch(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (ids, labels) rows to one (B, T) pair of tensors; padding is never labelled."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for r, (i, lab) in enumerate(rows):
        ids[r, : len(i)] = torch.tensor(i)
        labels[r, : len(lab)] = torch.tensor(lab)
    return ids, labels


def sequence_logprobs(model: torch.nn.Module, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed log p(label tokens | preceding tokens) per row, with gradient if the model has one."""
    logits = model_logits(model, ids)[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE
    logp = torch.gather(F.log_softmax(logits, dim=-1), 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(dim=1)
