"""Streaming generation yields, token by token, exactly what batch generation returns."""

from __future__ import annotations

import torch

from scalelab.model.config import ModelConfig
from scalelab.model.generate import generate, generate_stream
from scalelab.model.llama import Llama
from scalelab.model.lm import LM


def test_generate_stream_collects_to_generate() -> None:
    torch.manual_seed(0)
    model = Llama(ModelConfig(depth=2, aspect_ratio=32, head_dim=16, vocab_size=97, init_std=0.3)).eval()
    prompts = [[1, 5, 9, 13], [1, 7], [1, 60, 61, 62, 63, 3]]
    for kw in ({"temperature": 0.0}, {"temperature": 1.0, "seed": 3}, {"temperature": 0.8, "top_p": 0.9, "seed": 5}):
        steps = list(generate_stream(model, prompts, 12, stop_ids=[4, 8], **kw))
        rows = [[s[r] for s in steps if s[r] is not None] for r in range(len(prompts))]
        assert rows == generate(model, prompts, 12, stop_ids=[4, 8], **kw)
        assert 1 <= len(steps) <= 12


class _Tok:
    """The few tokenizer attributes `LM.stream`/`LM.generate` read, for a model without a trained tokenizer."""

    bos_token_id, eos_token_id, pad_token_id, unk_token_id = 1, 4, 0, 2

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.unk_token_id


def test_lm_stream_equals_lm_generate() -> None:
    torch.manual_seed(1)
    lm = LM(Llama(ModelConfig(depth=1, aspect_ratio=32, head_dim=16, vocab_size=64, init_std=0.3)).eval(), _Tok(),
            source=None)  # type: ignore[arg-type]
    prompt = [1, 9, 17, 33]
    for kw in ({"temperature": 0.0}, {"temperature": 0.9, "top_p": 0.95, "seed": 11}):
        assert list(lm.stream(prompt, 16, **kw)) == lm.generate([prompt], 16, **kw)[0]
