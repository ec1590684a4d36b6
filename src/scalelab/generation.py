"""Text in, text out: a checkpoint and its tokenizer behind `generate` and `chat`.

`model.generate.generate` works on token ids; this wraps it with the tokenizer and the chat template so
the CLI, evals and (later) the web app share one path from a prompt string to a reply string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from scalelab.data.chat import Message


@dataclass
class Generator:
    model: torch.nn.Module
    tokenizer: object

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> Generator:
        from transformers import AutoTokenizer

        from scalelab.model.hf import load_model

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a HF checkpoint folder (no config.json); "
                                    "pass a model's final/ directory, e.g. out/run/models/d4/final")
        model, _ = load_model(path, device=device)
        model.eval()
        return cls(model, AutoTokenizer.from_pretrained(path))

    def _stop_ids(self) -> list[int]:
        tok = self.tokenizer
        ids = [tok.convert_tokens_to_ids(t) for t in ("<|end|>", "<|bos|>")]
        return [i for i in ids if i is not None and i != tok.unk_token_id]

    @torch.no_grad()
    def complete(self, prompts: Sequence[str], max_new_tokens: int = 64, temperature: float = 0.8,
                 top_p: float = 0.95, seed: int | None = 0, add_bos: bool = True) -> list[str]:
        from scalelab.model.generate import generate

        tok = self.tokenizer
        bos = [tok.bos_token_id] if add_bos and tok.bos_token_id is not None else []
        ids = [bos + tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        outs = generate(self.model, ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                        stop_ids=self._stop_ids(), seed=seed)
        return [tok.decode(o, skip_special_tokens=True) for o in outs]

    def reply(self, messages: Sequence[Message], max_new_tokens: int = 128, temperature: float = 0.7,
              top_p: float = 0.95, seed: int | None = 0) -> str:
        prompt = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return self.complete([prompt], max_new_tokens, temperature, top_p, seed)[0].strip()
