"""Sampling from scalelab's Llama with a KV cache, for batches of prompts of different lengths.

Prompts are left-padded to a common length; each row carries its own RoPE positions (counting
from its first real token) and a key mask that hides its padding, so a prompt decodes the same
alone or in a batch. The cache is preallocated for prompt + new tokens, so each decoding step
runs the model on one token per row. temperature == 0 is greedy; otherwise softmax sampling at
that temperature restricted to the smallest set of tokens whose probability reaches `top_p`.

`generate` samples a whole batch from one random generator, so a row's draw depends on the rows before it.
`generate_rows` gives every row its own seed instead, so a sample never depends on what shares its batch
(the RSP's Inspect provider batches whatever requests happen to be in flight, which would otherwise make a
sampled eval such as best-of-n come out differently on every run). It samples by inversion: one uniform per
row and step, a counter-based hash of (the row's seed, the step) (`row_uniforms`), picks the token where it
falls in the row's cumulative softmax(l / T). Every quantity is a function of that row alone (its logits are
batch-independent, each row's padding being masked), so the row gets the sample its seed fixes in any batch;
and one hash per row replaces a generator call and a vocabulary's worth of Gumbel noise per row and step,
which was a fifth of a 256-row decoding step (BENCHMARKS.md). No top-p there: the capability evals sample
from the full distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from scalelab.errors import InputError
from scalelab.model.llama import KVCache, Llama
from scalelab.model.precision import active_autocast_dtype


def _sample(logits: torch.Tensor, temperature: float, top_p: float,
            generator: torch.Generator | None) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # keep a token if the mass strictly before it is below top_p (the top token is always kept)
        keep = (sorted_p.cumsum(dim=-1) - sorted_p) < top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


Pick = Callable[[torch.Tensor, int], torch.Tensor]
"""(B, V) fp32 logits of the last position and the decoding step → (B,) token ids."""


@torch.no_grad()
def generate(model: Llama, prompts: list[list[int]], max_new_tokens: int, temperature: float = 1.0,
             top_p: float = 1.0, stop_ids: Sequence[int] = (), seed: int | None = None,
             pick: Pick | None = None) -> list[list[int]]:
    """New tokens for each prompt (the prompt not repeated), ending before the first stop id."""
    out: list[list[int]] = [[] for _ in prompts]
    for step in generate_stream(model, prompts, max_new_tokens, temperature, top_p, stop_ids, seed, pick):
        for row, token in enumerate(step):
            if token is not None:
                out[row].append(token)
    return out


@torch.no_grad()
def generate_stream(model: Llama, prompts: list[list[int]], max_new_tokens: int, temperature: float = 1.0,
                    top_p: float = 1.0, stop_ids: Sequence[int] = (),
                    seed: int | None = None, pick: Pick | None = None) -> Iterator[list[int | None]]:
    """`generate`, one decoding step at a time: yields each row's new token (None once the row has stopped), so a
    server can send tokens as they are sampled. Collecting the steps gives exactly what `generate` returns.
    `pick` replaces the sampler (temperature, top_p and seed then unused)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise InputError("every prompt needs at least one token (start it with the BOS id)")
    if temperature < 0 or not 0 < top_p <= 1:
        raise InputError(f"temperature must be >= 0 and 0 < top_p <= 1; got {temperature}, {top_p}")
    param = next(model.parameters())
    device = param.device
    generator = torch.Generator(device).manual_seed(seed) if seed is not None else None
    batch, width = len(prompts), max(len(p) for p in prompts)
    ids = torch.zeros(batch, width, dtype=torch.long, device=device)
    valid = torch.zeros(batch, width + max_new_tokens, dtype=torch.bool, device=device)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
        valid[row, width - len(p):width] = True
    positions = (valid[:, :width].long().cumsum(dim=1) - 1).clamp(min=0)
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    # A padding query sees only itself (a row of all -inf would give NaN); its output is never used.
    mask = (causal & valid[:, None, :width]) | torch.eye(width, dtype=torch.bool, device=device)
    was_training = model.training
    model.eval()
    # Under autocast (`LM.precision`) keys and values come out in its dtype: the cache holds them as they are,
    # and the logits sampled from are computed in fp32 all the same (`fp32_logits`).
    dev = device.type
    kv_dtype = active_autocast_dtype(dev) or param.dtype
    try:
        cache = KVCache(model.cfg, batch, width + max_new_tokens, device, kv_dtype)
        logits = model(ids, positions=positions, mask=mask[:, None], cache=cache, fp32_logits=True)[:, -1]
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        stops = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
        next_pos = positions[:, -1] + 1
        for step in range(max_new_tokens):
            token = pick(logits, step) if pick else _sample(logits, temperature, top_p, generator)
            finished |= torch.isin(token, stops)
            yield [None if done else int(t) for t, done in zip(token.tolist(), finished.tolist(), strict=True)]
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            valid[:, width + step] = True
            key_mask = valid[:, None, None, :width + step + 1]
            logits = model(token[:, None], positions=next_pos[:, None], mask=key_mask, cache=cache,
                           fp32_logits=True)[:, -1]
            next_pos = next_pos + 1
    finally:
        model.train(was_training)


_M32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finaliser on int64 tensors holding 32-bit values (products wrap; the mask keeps the
    low 32 bits, which wrapping does not change)."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _M32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _M32
    return x ^ (x >> 16)


def row_uniforms(seeds: torch.Tensor, step: int) -> torch.Tensor:
    """(B,) float64 uniforms in (0, 1), each a function of its row's seed and `step` alone (counter-based)."""
    key = _mix32(seeds & _M32)
    return (_mix32((key + (step + 1) * 0x9E3779B9) & _M32).double() + 0.5) / 2.0**32


def row_seeded_pick(seeds: Sequence[int], temperature: float, device: torch.device) -> Pick:
    """Sampling by inversion at `temperature`, row i's draws fixed by `seeds[i]` (see the module docstring)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to sample; got {temperature}")
    keys = torch.tensor([int(s) for s in seeds], dtype=torch.long, device=device)

    def pick(logits: torch.Tensor, step: int) -> torch.Tensor:
        if logits.shape[0] != keys.shape[0]:
            raise ValueError(f"a batch of {logits.shape[0]} rows needs as many seeds; got {keys.shape[0]}")
        cdf = torch.softmax(logits.float() / temperature, dim=-1).double().cumsum(dim=-1)
        target = row_uniforms(keys, step)[:, None] * cdf[:, -1:]
        return torch.searchsorted(cdf, target).squeeze(-1).clamp(max=logits.shape[-1] - 1)

    return pick


@torch.no_grad()
def generate_rows(model: Llama, prompts: list[list[int]], seeds: Sequence[int], max_new_tokens: int,
                  temperature: float, stop_ids: Sequence[int] = ()) -> list[list[int]]:
    """New tokens for each prompt, sampled at `temperature`, row i determined by `seeds[i]` alone."""
    pick = row_seeded_pick(seeds, temperature, next(model.parameters()).device)
    return generate(model, prompts, max_new_tokens, stop_ids=stop_ids, pick=pick)
