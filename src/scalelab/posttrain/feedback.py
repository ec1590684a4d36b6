"""Feedback models: who critiques, revises, compares and teaches during Constitutional AI.

One interface, four sources, chosen by a spec string:

- `self`: the model being trained judges itself, as in Bai et al. (2022);
- `hf:<folder>`: any local HF checkpoint with a chat template (a larger ladder model, SmolLM2, ...);
- `openai:<model>`: an OpenAI-compatible chat endpoint; the base URL is read from the environment
  variable `SCALELAB_FEEDBACK_URL` and the key from `SCALELAB_FEEDBACK_API_KEY`;
- `oracle`: the world, which knows which requests are harmful, which claims are false and which
  entities exist. It is the upper bound that measures how much the quality of AI feedback matters.

A comparison asks a constitution question about two replies as a multiple-choice prompt and turns the
log-probabilities of the option tokens into a soft label, P(A) = softmax(logp(A), logp(B))[0], optionally
clamped (the paper clamps chain-of-thought labels to 40-60%). Language models favour one position, so
each pair is asked in both orders and the two estimates are averaged.
"""

from __future__ import annotations

import json
import math
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from scalelab.errors import InputError, MissingInput
from scalelab.evals.chat import AFFIRM, NEGATION, WorldFacts, refuses, says_idk, states
from scalelab.evals.scoring import choice_logprobs
from scalelab.model.lm import LM, load_lm
from scalelab.posttrain.constitution import Principle
from scalelab.posttrain.data import PromptItem

URL_ENV, KEY_ENV = "SCALELAB_FEEDBACK_URL", "SCALELAB_FEEDBACK_API_KEY"
OPTIONS = (" (A)", " (B)")


def soft_label(logp_a: float, logp_b: float, clamp: tuple[float, float] = (0.0, 1.0)) -> float:
    """P(A) from the two options' log-probabilities, normalised over the two and clamped to `clamp`."""
    m = max(logp_a, logp_b)
    ea, eb = math.exp(logp_a - m), math.exp(logp_b - m)
    return min(max(ea / (ea + eb), clamp[0]), clamp[1])


def comparison_prompt(item: PromptItem, a: str, b: str, question: str) -> str:
    """The multiple-choice question shown to a language-model judge (its answer is " (A)" or " (B)")."""
    request = item.messages[-1]["content"]
    return (f"Consider a conversation where a user asks: {request}\n{question}\n"
            f"Options:\n(A) {a}\n(B) {b}\nAnswer with (A) or (B).")


class FeedbackModel(Protocol):
    name: str

    def compare(self, items: Sequence[PromptItem], a: Sequence[str], b: Sequence[str],
                questions: Sequence[str]) -> list[float]: ...

    def critique_and_revise(self, items: Sequence[PromptItem], responses: Sequence[str],
                            principles: Sequence[Principle]) -> tuple[list[str], list[str]]: ...

    def teach(self, items: Sequence[PromptItem], system_prompt: str) -> list[str]: ...


@dataclass
class OracleFeedback:
    """Judges with the world's labels: a reply's quality is exact for every kind of request."""

    facts: WorldFacts
    name: str = "oracle"

    def quality(self, item: PromptItem, text: str) -> float:
        """1 for the behaviour a good assistant shows, 0 for the failure the evals count, 0.5 in between.

        The middle grade orders replies that are neither: a harmless question answered wrongly is better
        than refused (a refusal is the over-refusal failure; the two used to tie, so RL-CAI's pairs never
        taught "answer, do not refuse" while its harmful pairs taught "refuse"), and a false claim left
        uncorrected is better than agreed with.
        """
        if item.kind == "harmful":
            return 0.0 if self.facts.gives_recipe(text) else (1.0 if refuses(text) else 0.5)
        if item.kind == "unknown":
            return 1.0 if says_idk(text) else 0.0
        value = self.facts.subject_value(item.messages[-1]["content"], item.reference)
        if item.kind == "sycophancy":
            fixed = bool(NEGATION.search(text))
            if fixed and value and states(text, value):
                return 1.0
            return 0.0 if not fixed and AFFIRM.search(text) else 0.5
        # fact_qa / benign: the true value, not refused
        if refuses(text):
            return 0.0
        return 1.0 if value and states(text, value) else 0.5

    def compare(self, items, a, b, questions) -> list[float]:
        out = []
        for it, ra, rb in zip(items, a, b, strict=True):
            qa, qb = self.quality(it, ra), self.quality(it, rb)
            out.append(1.0 if qa > qb else 0.0 if qa < qb else 0.5)
        return out

    def critique_and_revise(self, items, responses, principles) -> tuple[list[str], list[str]]:
        crits, revs = [], []
        for it, r, p in zip(items, responses, principles, strict=True):
            ok = self.quality(it, r) == 1.0
            crits.append(f"Under '{p.name}': the response is {'fine' if ok else 'not acceptable'}.")
            revs.append(r if ok else it.reference)
        return crits, revs

    def teach(self, items, system_prompt) -> list[str]:
        return [it.reference for it in items]


@dataclass
class LMFeedback:
    """A local causal LM as critic, reviser, judge and teacher (the lm itself, or another checkpoint)."""

    lm: LM
    name: str
    clamp: tuple[float, float] = (0.0, 1.0)
    max_new_tokens: int = 48
    seed: int = 0

    def _p_first(self, items, a, b, questions) -> list[float]:
        prompts = [self.lm.chat_text([{"role": "user", "content": comparison_prompt(it, x, y, q)}]) + "The answer is"
                   for it, x, y, q in zip(items, a, b, questions, strict=True)]
        scores = choice_logprobs(self.lm, prompts, [list(OPTIONS)] * len(prompts))
        return [soft_label(s[0], s[1]) for s in scores]

    def compare(self, items, a, b, questions) -> list[float]:
        ab, ba = self._p_first(items, a, b, questions), self._p_first(items, b, a, questions)
        lo, hi = self.clamp
        return [min(max((x + 1 - y) / 2, lo), hi) for x, y in zip(ab, ba, strict=True)]

    def critique_and_revise(self, items, responses, principles) -> tuple[list[str], list[str]]:
        convs = [[*it.messages, {"role": "assistant", "content": r}, {"role": "user", "content": p.critique}]
                 for it, r, p in zip(items, responses, principles, strict=True)]
        crits = self.lm.chat(convs, self.max_new_tokens, temperature=0.0)
        convs = [[*c, {"role": "assistant", "content": k}, {"role": "user", "content": p.revision}]
                 for c, k, p in zip(convs, crits, principles, strict=True)]
        revs = self.lm.chat(convs, self.max_new_tokens, temperature=0.0)
        return crits, [v or r for v, r in zip(revs, responses, strict=True)]  # an empty revision keeps the reply

    def teach(self, items, system_prompt) -> list[str]:
        convs = [[{"role": "system", "content": system_prompt}, *[m for m in it.messages if m["role"] != "system"]]
                 for it in items]
        return self.lm.chat(convs, self.max_new_tokens, temperature=0.0)


@dataclass
class EndpointFeedback:
    """An OpenAI-compatible `/chat/completions` endpoint (URL and key from the environment)."""

    model: str
    url: str
    key: str
    clamp: tuple[float, float] = (0.0, 1.0)
    timeout: float = 60.0

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def _chat(self, messages: list[dict[str, str]], **extra) -> dict:
        body = json.dumps({"model": self.model, "messages": messages, **extra}).encode()
        req = urllib.request.Request(self.url.rstrip("/") + "/chat/completions", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.key}"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read())

    def _p_first(self, item: PromptItem, a: str, b: str, question: str) -> float:
        msg = [{"role": "user", "content": comparison_prompt(item, a, b, question)}]
        out = self._chat(msg, max_tokens=1, logprobs=True, top_logprobs=5, temperature=0)["choices"][0]
        top = ((out.get("logprobs") or {}).get("content") or [{}])[0].get("top_logprobs") or []
        lp = {}
        for t in top:
            key = t["token"].strip().strip("()")
            if key in ("A", "B") and key not in lp:
                lp[key] = t["logprob"]
        if "A" in lp and "B" in lp:
            return soft_label(lp["A"], lp["B"])
        # No option log-probabilities: fall back to the hard choice in the text (or its one listed option).
        text = (out.get("message") or {}).get("content", "").strip().strip("()")
        return 1.0 if text.startswith("A") or ("A" in lp) else 0.0 if text.startswith("B") or ("B" in lp) else 0.5

    def compare(self, items, a, b, questions) -> list[float]:
        lo, hi = self.clamp
        return [min(max((self._p_first(it, x, y, q) + 1 - self._p_first(it, y, x, q)) / 2, lo), hi)
                for it, x, y, q in zip(items, a, b, questions, strict=True)]

    def _reply(self, messages: list[dict[str, str]]) -> str:
        return self._chat(messages, max_tokens=128, temperature=0)["choices"][0]["message"]["content"].strip()

    def critique_and_revise(self, items, responses, principles) -> tuple[list[str], list[str]]:
        crits, revs = [], []
        for it, r, p in zip(items, responses, principles, strict=True):
            conv = [*it.messages, {"role": "assistant", "content": r}, {"role": "user", "content": p.critique}]
            crit = self._reply(conv)
            rev = self._reply([*conv, {"role": "assistant", "content": crit}, {"role": "user", "content": p.revision}])
            crits.append(crit)
            revs.append(rev or r)
        return crits, revs

    def teach(self, items, system_prompt) -> list[str]:
        return [self._reply([{"role": "system", "content": system_prompt},
                             *[m for m in it.messages if m["role"] != "system"]]) for it in items]


FEEDBACK_KINDS = ("oracle", "self", "hf:<checkpoint folder>", "openai:<model>")


def check_feedback(spec: str) -> None:
    """Reject a feedback spec that cannot work before any stage runs (not halfway through post-training)."""
    if spec in ("oracle", "self"):
        return
    if spec.startswith("hf:"):
        if not (Path(spec[3:]) / "config.json").is_file():
            raise MissingInput(f"feedback {spec!r}: {spec[3:]} is not a HF checkpoint folder (no config.json)")
        return
    if spec.startswith("openai:"):
        if not os.environ.get(URL_ENV):
            raise InputError(f"feedback {spec!r} needs the endpoint's base URL in ${URL_ENV} "
                             f"(e.g. http://127.0.0.1:8000/v1) and its key in ${KEY_ENV}")
        return
    raise InputError(f"unknown feedback model {spec!r}; valid: {', '.join(FEEDBACK_KINDS)}")


def make_feedback(spec: str, lm: LM, world_dir: Path, clamp: tuple[float, float] = (0.0, 1.0)) -> FeedbackModel:
    """The feedback model named by `spec` (see the module docstring)."""
    check_feedback(spec)
    if spec == "oracle":
        return OracleFeedback(WorldFacts.load(world_dir))
    if spec == "self":
        return LMFeedback(lm, "self", clamp)
    if spec.startswith("hf:"):
        path = spec[3:]
        return LMFeedback(load_lm(path, chat=True), f"hf:{Path(path).name}", clamp)
    return EndpointFeedback(spec[7:], os.environ[URL_ENV], os.environ.get(KEY_ENV, ""), clamp)
