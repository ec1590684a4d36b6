"""The language-model handle every stage uses: load, save, sample, chat.

An `LM` is a causal language model ready to use — its weights, its tokenizer (with the chat template), and
the folder it came from. A scalelab checkpoint, or any HF Llama folder such as SmolLM2 imported from GGUF,
loads into scalelab's own `Llama`, which is faster on a CPU and samples through the KV-cached
`model.generate`; any other HF causal LM loads through `transformers` and samples with its own `generate`.
Pretraining evals, post-training, the RSP's Inspect provider, interpretability and the CLI all load and
sample through this one module, so a prompt becomes a reply the same way everywhere:

- prompts start with BOS (scalelab documents do in pretraining; an imported template may add its own);
- a reply stops at the end-of-turn token (`stop_ids`: scalelab's `<|end|>`/`<|bos|>`, else the model's EOS);
- temperature 0 is greedy; otherwise nucleus sampling below `top_p`, from one generator seeded per batch, or
  with `row_seeds`, one seed per row so a sample never depends on what shares its batch (`generate_rows`);
- forward passes run in `precision`: fp32 unless a caller resolves `dtype=auto` with `use_precision` (bf16
  autocast where this host measured the model's products faster in it, `model.precision`); the logits that are
  sampled or scored come out of an fp32 unembedding either way (`logits`, `Llama.forward(fp32_logits=True)`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scalelab.chat_format import BOS, END, Message
from scalelab.errors import InputError, MissingInput
from scalelab.model.generate import generate, generate_rows, generate_stream
from scalelab.model.hf import load_model, save_hf
from scalelab.model.llama import Llama
from scalelab.model.precision import FP32, Precision, choose_precision, model_shapes


def model_logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, V) from scalelab's model or any HF causal LM."""
    out = model(input_ids)
    return out.logits if hasattr(out, "logits") else out


def _is_causal_lm(architectures: Sequence[str]) -> bool:
    return not architectures or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


@dataclass
class LM:
    """A causal LM with its tokenizer and the folder it was loaded from (tokenizer files are copied from
    there on save)."""

    model: nn.Module
    tokenizer: Any
    source: Path
    precision: Precision = FP32
    """what `logits`, `generate` and `stream` run their forward passes in (`use_precision` sets it)."""

    def use_precision(self, requested: str, rows: int) -> Precision:
        """Resolve `requested` (auto | fp32 | bf16) for forward passes of `rows` tokens on this model's shapes,
        and run every later forward pass in it; returns the choice (for the artifact's record)."""
        self.precision = choose_precision(requested, self.device, model_shapes(self.model, rows))
        return self.precision

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """fp32 logits (B, T, V) for a batch, the body of the forward pass run in `precision` (inference: no
        gradients; training calls the model itself)."""
        with self.precision.context(self.device):
            if self.is_scalelab:
                return self.model(input_ids, fp32_logits=True)
            return model_logits(self.model, input_ids).float()

    @property
    def is_scalelab(self) -> bool:
        """Whether the weights run on scalelab's `Llama` (KV-cached sampling, row seeds, activation hooks)."""
        return isinstance(self.model, Llama)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        cfg = getattr(self.model, "cfg", None)
        return int(cfg.max_seq_len if cfg is not None else self.model.config.max_position_embeddings)

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else 0

    def bos(self) -> list[int]:
        return [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []

    def encode(self, text: str, bos: bool = False) -> list[int]:
        """Token ids of `text` (no special tokens added), after BOS when `bos`."""
        return (self.bos() if bos else []) + list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def stop_ids(self) -> list[int]:
        """Tokens that end a reply: scalelab's end of message and BOS, else the model's own EOS."""
        tok = self.tokenizer
        ids = [tok.convert_tokens_to_ids(t) for t in (END, BOS)]
        ids = [i for i in ids if i is not None and i != tok.unk_token_id]
        return ids or ([tok.eos_token_id] if tok.eos_token_id is not None else [])

    def chat_text(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """A conversation rendered by the tokenizer's chat template (the assistant's turn opened)."""
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, *, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = 0, row_seeds: Sequence[int] | None = None,
                 batch_size: int | None = None) -> list[list[int]]:
        """New token ids for each prompt, in chunks of `batch_size` (None: one batch).

        Chunk k samples with `seed + k·batch_size`; with `row_seeds` (scalelab weights, top_p 1) every row draws
        from its own seed instead, so its sample does not depend on the chunk it falls in.
        """
        with self.precision.context(self.device):
            return self._generate(prompts, max_new_tokens, temperature, top_p, seed, row_seeds, batch_size)

    def _generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float, top_p: float,
                  seed: int | None, row_seeds: Sequence[int] | None, batch_size: int | None) -> list[list[int]]:
        prompts = [list(p) for p in prompts]
        size = batch_size or max(1, len(prompts))
        per_row = row_seeds is not None and temperature > 0 and self.is_scalelab and top_p >= 1.0
        if row_seeds is not None and not per_row and seed is not None:
            seed = int(row_seeds[0]) if row_seeds else seed  # one generator, seeded by the first row
        out: list[list[int]] = []
        for start in range(0, len(prompts), size):
            chunk = prompts[start:start + size]
            if per_row:
                out += generate_rows(self.model, chunk, list(row_seeds[start:start + size]),  # type: ignore[index]
                                     max_new_tokens, temperature, self.stop_ids())
                continue
            chunk_seed = None if seed is None else seed + start
            if self.is_scalelab:
                out += generate(self.model, chunk, max_new_tokens, temperature=temperature, top_p=top_p,
                                stop_ids=self.stop_ids(), seed=chunk_seed)
            else:
                out += self._hf_generate(chunk, max_new_tokens, temperature, top_p, chunk_seed)
        return out

    @torch.no_grad()
    def stream(self, prompt: Sequence[int], max_new_tokens: int, *, temperature: float = 0.0, top_p: float = 1.0,
               seed: int | None = 0) -> Iterator[int]:
        """The new token ids for one prompt, yielded as each is sampled; together they are exactly
        `generate([prompt], ...)[0]`. Models scalelab's Llama does not run are generated whole, then yielded."""
        if not self.is_scalelab:
            yield from self.generate([prompt], max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)[0]
            return
        steps = generate_stream(self.model, [list(prompt)], max_new_tokens, temperature=temperature,  # type: ignore[arg-type]
                                top_p=top_p, stop_ids=self.stop_ids(), seed=seed)
        while True:
            with self.precision.context(self.device):  # per step: a generator's body runs outside any caller's `with`
                step = next(steps, None)
            if step is None or step[0] is None:
                return
            yield step[0]

    def complete(self, texts: Sequence[str], max_new_tokens: int = 64, *, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = 0, row_seeds: Sequence[int] | None = None,
                 batch_size: int | None = None) -> list[str]:
        """Continuations of plain-text prompts (BOS first; decoded as generated, not stripped)."""
        ids = self.generate([self.encode(t, bos=True) for t in texts], max_new_tokens, temperature=temperature,
                            top_p=top_p, seed=seed, row_seeds=row_seeds, batch_size=batch_size)
        return [self.decode(i) for i in ids]

    def chat(self, conversations: Sequence[Sequence[Message]], max_new_tokens: int = 48, *,
             temperature: float = 0.0, top_p: float = 1.0, seed: int | None = 0,
             row_seeds: Sequence[int] | None = None, batch_size: int | None = 64) -> list[str]:
        """The assistant's next reply to each conversation, through the chat template (stripped)."""
        ids = [self.encode(self.chat_text(c), bos=True) for c in conversations]
        out = self.generate(ids, max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                            row_seeds=row_seeds, batch_size=batch_size)
        return [self.decode(i).strip() for i in out]

    def _hf_generate(self, prompts: list[list[int]], max_new_tokens: int, temperature: float, top_p: float,
                     seed: int | None) -> list[list[int]]:
        """transformers' own `generate` for models scalelab's Llama does not implement (left-padded batch)."""
        model = self.model
        if seed is not None:
            torch.manual_seed(seed)
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        gen = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=max_new_tokens,
                             do_sample=temperature > 0, temperature=temperature or None,
                             top_p=top_p if temperature > 0 and top_p < 1.0 else None, top_k=None,
                             pad_token_id=self.pad_id, eos_token_id=self.stop_ids())
        stops = set(self.stop_ids())
        out = []
        for row in gen[:, width:].tolist():
            cut = next((k for k, t in enumerate(row) if t in stops), len(row))
            out.append(row[:cut])
        return out


def load_lm(path: Path | str, device: str | torch.device = "cpu", *, chat: bool = False) -> LM:
    """Load a HF causal LM folder (fp32, eval mode); `chat=True` also requires a chat template.

    A folder that is missing, not a causal LM, or (with `chat`) without a chat template is refused with a
    message naming it.
    """
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise MissingInput(f"{path} is not a HF model folder (no config.json); pass a checkpoint folder such as "
                           "OUT/models/d4/final, OUT/posttrain/sft, or one written by `scalelab import-gguf`")
    try:
        hf_cfg = json.loads(cfg_file.read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{cfg_file} is not valid JSON: {err}") from err
    archs = hf_cfg.get("architectures") or []
    if not _is_causal_lm(archs):
        raise InputError(f"{path} holds a {', '.join(archs)}, not a causal LM; scalelab reads decoder-only "
                         "causal language models")
    from transformers import AutoTokenizer  # ~2 s to import: only where a model is loaded

    tok = AutoTokenizer.from_pretrained(str(path))
    if chat and not getattr(tok, "chat_template", None):
        raise InputError(f"the tokenizer in {path} has no chat template; chat needs one to render conversations")
    if tok.pad_token_id is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    model: nn.Module | None = None
    if hf_cfg.get("model_type") == "llama":
        try:
            model, _ = load_model(path, device=device)
        except InputError:
            model = None  # a Llama variant scalelab does not implement: transformers reads it below
    if model is None:
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).to(device)
        except ValueError as err:
            raise InputError(f"{path} cannot be loaded as a causal LM: {err}") from err
    return LM(model.eval(), tok, path)


def save_lm(lm: LM, out_dir: Path | str) -> Path:
    """Write the LM as a HF folder (weights, config, tokenizer with its chat template)."""
    out_dir = Path(out_dir)
    if lm.is_scalelab:
        return save_hf(lm.model, out_dir, tokenizer_dir=lm.source)  # type: ignore[arg-type]
    lm.model.save_pretrained(out_dir)
    lm.tokenizer.save_pretrained(out_dir)
    return out_dir
