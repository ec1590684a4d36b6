"""Generation: the KV cache and left padding must not change what greedy decoding produces."""

from __future__ import annotations

import pytest
import torch

from scalelab.model.config import ModelConfig
from scalelab.model.generate import generate
from scalelab.model.llama import Llama


@pytest.fixture(scope="module")
def model() -> Llama:
    torch.manual_seed(0)
    # A large init makes the logits peaked, so greedy argmax is far from ties and comparisons are robust.
    cfg = ModelConfig(depth=2, aspect_ratio=32, head_dim=16, vocab_size=97, n_kv_heads=2, init_std=0.3)
    return Llama(cfg).eval()


def _greedy_without_cache(model: Llama, prompt: list[int], n: int) -> list[int]:
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    return seq[len(prompt):]


PROMPTS = [[1, 5, 9, 13, 40], [1, 7], [1, 60, 61, 62, 63, 64, 65, 3, 8]]


def test_kv_cache_greedy_equals_full_recomputation(model: Llama) -> None:
    for prompt in PROMPTS:
        assert generate(model, [prompt], 12, temperature=0) == [_greedy_without_cache(model, prompt, 12)]


def test_batched_left_padded_equals_one_by_one(model: Llama) -> None:
    batched = generate(model, PROMPTS, 10, temperature=0)
    single = [generate(model, [p], 10, temperature=0)[0] for p in PROMPTS]
    assert batched == single
    assert all(len(row) == 10 for row in batched)


def test_stop_ids_end_a_row_without_the_stop_token(model: Llama) -> None:
    full = generate(model, [PROMPTS[0]], 10, temperature=0)[0]
    stop = full[3]
    cut = generate(model, [PROMPTS[0]], 10, temperature=0, stop_ids=[stop])[0]
    assert cut == full[: full.index(stop)]


def test_sampling_is_reproducible_with_a_seed_and_top_p_restricts_it(model: Llama) -> None:
    a = generate(model, PROMPTS, 8, temperature=1.0, top_p=0.9, seed=3)
    b = generate(model, PROMPTS, 8, temperature=1.0, top_p=0.9, seed=3)
    assert a == b
    # top_p so small that only the most likely token survives: sampling becomes greedy
    assert generate(model, PROMPTS, 8, temperature=1.0, top_p=1e-6, seed=5) == generate(
        model, PROMPTS, 8, temperature=0)


def test_empty_prompt_is_a_clear_error(model: Llama) -> None:
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[]], 4)
