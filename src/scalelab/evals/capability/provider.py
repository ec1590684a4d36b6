"""The `scalelab` Inspect AI model provider: any scalelab (or HF chat) checkpoint folder as an Inspect model.

`--model scalelab/<absolute model folder>` loads the folder with `model.lm.load_lm` and serves
Inspect's `generate` offline: chat messages go through the model's own chat template (`LM.chat`),
greedy at temperature 0 (Inspect's default when no temperature is set), sampled otherwise, with
`num_choices` samples per request (best-of-n). A user message whose metadata carries `RAW_COMPLETION`
is continued as plain text instead (the world's recipe and fact prompts are completion prompts, not
chats). Multiple-choice items are scored by summed choice log-likelihood through `choice_logprobs`, a
method Inspect's API does not have: the `answer` solver in `evals.capability.tasks` reaches it through
`get_model().api`.

Concurrent requests from Inspect's samples are collected into batches (`_Batcher`) and run in one worker
thread, because a tiny model is far cheaper per item in a batch than alone. Greedy decoding and choice
scoring give the same answer alone or in any batch (`model.generate` masks each row's padding), so results
never depend on how requests happened to be grouped. Sampling keeps that property too: each of a request's
`num_choices` rows draws from its own seed (the config's seed, the prompt, the row), so the
same request always gets the same samples (`LM.generate`'s `row_seeds`). (A checkpoint that loads through
transformers rather than as a Llama, or top_p < 1, samples each batch from one generator instead.) Prompts
longer than the context window lose their oldest tokens (text) or oldest turns (chat; few-shot examples go first).
Token counting is the model's tokenizer, so Inspect never reaches for tiktoken's download; nothing here
touches the network.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from scalelab.errors import InputError
from scalelab.evals.scoring import choice_logprobs
from scalelab.model.lm import load_lm

PROVIDER = "scalelab"
RAW_COMPLETION = "scalelab_raw_completion"  # user-message metadata key: continue the text, no chat template
DEFAULT_MAX_TOKENS = 64
# Rows per forward pass when scoring choices. Each row's log-softmax spans the whole vocabulary at every
# position, and on the tiny ladder's d4 16 rows ran ~1.5x faster than 64 (generation is the other way round).
CHOICE_ROWS = 16
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def set_offline_env() -> None:
    """Tell the HF libraries not to look for the hub (a local folder never needs it)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def model_spec(model_dir: Path | str) -> str:
    """The Inspect model name of a checkpoint folder: ``scalelab/<absolute path>``."""
    return f"{PROVIDER}/{Path(model_dir).resolve()}"


def sample_seed(seed: int, prompt: str) -> int:
    """A per-request seed: the same prompt and seed always draw the same samples, whatever else runs."""
    return (seed * 1_000_003 + int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8], 16)) % (2**31)


class _Batcher:
    """Collects concurrent requests by key and runs each group as one call of `run(key, payloads)`.

    Requests that arrive while a batch runs wait for the next one, so batches grow to whatever
    Inspect has in flight. Work runs in a worker thread so the event loop keeps accepting requests.
    """

    def __init__(self, run: Callable[[Hashable, list[Any]], list[Any]]) -> None:
        self._run = run
        self._pending: dict[Hashable, list[tuple[Any, asyncio.Future]]] = defaultdict(list)
        self._worker: asyncio.Task | None = None

    async def submit(self, key: Hashable, payload: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._pending[key].append((payload, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            # let every sample that is ready reach submit() before the batch is cut
            for _ in range(4):
                await asyncio.sleep(0)
            groups, self._pending = self._pending, defaultdict(list)
            for key, items in groups.items():
                try:
                    results = await asyncio.to_thread(self._run, key, [p for p, _ in items])
                except Exception as ex:  # every waiter of the failed batch sees the error
                    for _, fut in items:
                        if not fut.done():
                            fut.set_exception(ex)
                    continue
                for (_, fut), result in zip(items, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)


def to_messages(input: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Inspect chat messages as scalelab chat messages (role + text)."""
    out = []
    for m in input:
        if m.role not in ("system", "user", "assistant"):
            raise InputError(f"the scalelab provider has no tools: got a {m.role!r} message; "
                             "run tasks without tool calls")
        out.append({"role": m.role, "content": m.text})
    return out


def is_raw_completion(input: Sequence[ChatMessage]) -> bool:
    return len(input) == 1 and input[0].role == "user" and bool((input[0].metadata or {}).get(RAW_COMPLETION))


class ScalelabAPI(ModelAPI):
    """Inspect's view of one checkpoint folder (see the module docstring).

    Model args (`-M key=value` on the command line, `model_args` in Python): ``device`` (default cpu),
    ``batch_size`` (requests decoded together, default 64).
    """

    def __init__(self, model_name: str, base_url: str | None = None, api_key: str | None = None,
                 config: GenerateConfig | None = None, device: str = "cpu", batch_size: int = 64,
                 **model_args: Any) -> None:
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key,
                         config=config or GenerateConfig())
        if model_args:
            raise InputError(f"unknown model args for the scalelab provider: {', '.join(sorted(model_args))}; "
                             "known: device, batch_size")
        set_offline_env()
        path = Path(model_name)
        if not path.is_absolute() or not (path / "config.json").is_file():
            raise InputError(f"scalelab/{model_name}: not an absolute path to a model folder with a config.json; "
                             "use --model scalelab/<absolute path>, e.g. scalelab//abs/run/models/d4/final")
        self.lm = load_lm(path, device=device, chat=True)
        self.batch_size = int(batch_size)
        self.device = device
        self._batcher = _Batcher(self._run_batch)

    # --- Inspect's interface -------------------------------------------------------------------------------

    async def generate(self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice,
                       config: GenerateConfig) -> ModelOutput:
        if tools:
            raise InputError("the scalelab provider cannot call tools; remove use_tools() from the task")
        raw = is_raw_completion(input)
        prompt: Any = input[0].text if raw else to_messages(input)
        temperature = float(config.temperature or 0.0)
        top_p = float(config.top_p if config.top_p is not None else 1.0)
        max_new = int(config.max_tokens or DEFAULT_MAX_TOKENS)
        n = int(config.num_choices or 1)
        prompt = self.fit_context(prompt, max_new)
        if temperature == 0:
            # greedy requests share batches; n greedy choices would all be the same text
            text = await self._batcher.submit(("greedy", raw, max_new), prompt)
            texts = [text] * n
        else:
            texts = await self._batcher.submit(("sample", raw, max_new, temperature, top_p, n,
                                                int(config.seed or 0)), prompt)
        prompt_text = prompt if raw else self.lm.chat_text(prompt)
        out_tokens = [len(self.lm.encode(t)) for t in texts]
        choices = [ChatCompletionChoice(message=ChatMessageAssistant(content=t, model=self.model_name,
                                                                     source="generate"),
                                        stop_reason="max_tokens" if k >= max_new else "stop")
                   for t, k in zip(texts, out_tokens, strict=True)]
        n_in = len(self.lm.encode(prompt_text))
        return ModelOutput(model=self.model_name, choices=choices,
                           usage=ModelUsage(input_tokens=n_in, output_tokens=sum(out_tokens),
                                            total_tokens=n_in + sum(out_tokens)))

    async def count_text_tokens(self, text: str) -> int:
        return len(self.lm.encode(text))

    def max_tokens(self) -> int | None:
        return DEFAULT_MAX_TOKENS

    def max_connections(self) -> int:
        return self.batch_size

    def collapse_user_messages(self) -> bool:
        return False

    # --- beyond Inspect: multiple choice by log-likelihood ------------------------------------------------------

    async def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> list[float]:
        """Summed log p(choice | BOS + prompt) of each choice (the prompt is plain text, no chat template)."""
        return await self._batcher.submit(("choices",), (self._fit_choices(prompt, choices), list(choices)))

    # --- the work, in the batcher's thread ------------------------------------------------------------------

    def _run_batch(self, key: Hashable, payloads: list[Any]) -> list[Any]:
        kind = key[0]  # type: ignore[index]
        if kind == "choices":
            return self._choices(payloads)
        if kind == "greedy":
            _, raw, max_new = key  # type: ignore[misc]
            return self._decode(payloads, raw, max_new)
        _, raw, max_new, temperature, top_p, n, seed = key  # type: ignore[misc]
        rows = [p for p in payloads for _ in range(n)]
        seeds = [sample_seed(seed, repr(p)) + j for p in payloads for j in range(n)]
        texts = self._decode(rows, raw, max_new, temperature, top_p, seeds)
        return [texts[i * n:(i + 1) * n] for i in range(len(payloads))]

    def context_length(self) -> int:
        return self.lm.context_length

    def fit_context(self, prompt: Any, max_new: int) -> Any:
        """The prompt cut to fit the context window with `max_new` tokens to spare (a no-op when it fits).

        Plain text loses its oldest tokens; a chat loses its oldest turns after the system prompt (few-shot
        examples first), keeping the last user turn whole.
        """
        budget = self.context_length() - max_new - 1  # 1 for BOS
        tok = self.lm.tokenizer
        if isinstance(prompt, str):
            enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
            extra = len(enc["input_ids"]) - budget
            return prompt if extra <= 0 else prompt[enc["offset_mapping"][extra][0]:]
        messages = list(prompt)
        head = 1 if messages and messages[0]["role"] == "system" else 0
        while (len(messages) - head > 1
               and len(self.lm.encode(self.lm.chat_text(messages))) > budget):
            del messages[head]
        return messages

    def _fit_choices(self, prompt: str, choices: Sequence[str]) -> str:
        longest = max(len(self.lm.encode(c)) for c in choices)
        return self.fit_context(prompt, longest)

    def _choices(self, chunk: list[tuple[str, list[str]]]) -> list[list[float]]:
        return choice_logprobs(self.lm, [p for p, _ in chunk], [c for _, c in chunk], batch_size=CHOICE_ROWS)

    def _decode(self, prompts: list[Any], raw: bool, max_new: int, temperature: float = 0.0, top_p: float = 1.0,
                seeds: list[int] | None = None) -> list[str]:
        """Replies to chats (or continuations of plain text when `raw`); sampled rows use `seeds`."""
        if raw and not self.lm.is_scalelab:
            raise InputError(f"{self.model_name}: plain-text completion needs a Llama-family checkpoint; "
                             "this one loads through transformers, so run only the chat tasks on it")
        seed = seeds[0] if seeds else 0
        if raw:
            # row-seeded samples do not depend on their batch, so they go in chunks; anything else in one batch
            per_row = bool(seeds) and temperature > 0 and top_p >= 1.0
            return self.lm.complete(prompts, max_new, temperature=temperature, top_p=top_p, seed=seed,
                                    row_seeds=seeds, batch_size=self.batch_size if per_row else None)
        return self.lm.chat(prompts, max_new, temperature=temperature, top_p=top_p, seed=seed, row_seeds=seeds,
                            batch_size=self.batch_size)


@modelapi(name=PROVIDER)
def scalelab() -> type[ModelAPI]:
    return ScalelabAPI
