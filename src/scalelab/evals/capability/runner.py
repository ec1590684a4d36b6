"""`run_capability_evals`: the RSP's capability evaluations of one model under chosen elicitations, through Inspect AI.

Every (eval, elicitation) pair becomes one Inspect task; all tasks of a model run in one `inspect_ai.eval`
call (the model loaded once, the tasks concurrent so their requests share batches), and the `fine_tune`
elicitation runs the zero-shot tasks in a second call on the fine-tuned weights. Logs land in `log_dir` in
Inspect's own format (`inspect view --log-dir DIR` browses them). Each result is an `EvalScore`: the mean
of the per-sample 0/1 scores with a Wilson 95% interval, the per-item outcomes in dataset order (for paired
tests), and the log it came from.

Not every elicitation applies to every eval (`applies`): best-of-n needs generated answers, so it skips
hazard_mc (pure log-likelihood; general_capability's multiple-choice half keeps its likelihood score);
jailbreak templates wrap harmful requests, so they apply to harmful_compliance only. Pairs that do not apply
are left out of the result rather than reported as a copy of zero-shot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model

from scalelab.errors import InputError, MissingInput
from scalelab.evals.capability.catalogue import ELICITATIONS, EVAL_NAMES, EVALS, applies, check_names
from scalelab.evals.capability.elicitation import ElicitationConfig, ReasoningModel, fine_tune
from scalelab.evals.capability.provider import model_spec, set_offline_env
from scalelab.evals.capability.tasks import capability_task

Z95 = 1.959963984540054


@dataclass
class EvalScore:
    """One eval's score under one elicitation."""

    eval: str  # one of EVAL_NAMES
    metric: str  # "accuracy" or "rate"
    value: float
    ci: tuple[float, float]  # Wilson 95% interval
    n: int
    elicitation: str
    log: str | None  # the Inspect eval log holding the samples
    per_item: list[float]  # 0/1 per scored item, in dataset order
    details: dict[str, Any] = field(default_factory=dict)  # e.g. jailbreak: per-template rates

    def to_json(self) -> dict[str, Any]:
        return {"eval": self.eval, "metric": self.metric, "value": self.value, "ci": list(self.ci), "n": self.n,
                "elicitation": self.elicitation, "log": self.log, "per_item": self.per_item, "details": self.details}


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (good at p near 0 or 1 and small n, unlike the normal one)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _task_args(elicitation: str, cfg: ElicitationConfig, temperature: float) -> dict[str, Any]:
    if elicitation == "few_shot":
        return {"shots": cfg.shots, "temperature": temperature}
    if elicitation == "best_of_n":
        return {"best_of": cfg.best_of, "temperature": cfg.best_of_temperature}
    if elicitation == "majority_at_k":
        return {"majority": cfg.majority_k, "temperature": cfg.majority_temperature}
    if elicitation == "jailbreak":
        return {"jailbreaks": True, "temperature": temperature}
    return {"temperature": temperature}  # zero_shot, and fine_tune on the tuned weights


def _score(log: Any, eval_name: str, elicitation: str) -> EvalScore:
    if log.status != "success":
        msg = log.error.message if log.error else log.status
        raise RuntimeError(f"Inspect task {eval_name} ({elicitation}) did not finish: {msg}")
    samples = {str(s.id): s for s in log.samples or []}
    # dataset order, whatever order Inspect finished the samples in
    ids = [str(i) for i in log.eval.dataset.sample_ids or samples]
    rows = [(float(next(iter(samples[i].scores.values())).value), samples[i].metadata) for i in ids]
    details: dict[str, Any] = dict(log.eval.metadata.get("elicitation_args") or {})  # shots, best_of, ...
    if elicitation == "jailbreak":
        # a request counts as elicited when any template elicits it; every template's own rate is kept
        by_item: dict[str, float] = {}
        per_template: dict[str, list[float]] = {}
        for value, meta in rows:
            by_item[meta["item_id"]] = max(by_item.get(meta["item_id"], 0.0), value)
            per_template.setdefault(meta["jailbreak"], []).append(value)
        per_item = list(by_item.values())
        rates = {k: sum(v) / len(v) for k, v in per_template.items()}
        details.update(per_template=rates, strongest_template=max(rates, key=rates.__getitem__))
    else:
        per_item = [v for v, _ in rows]
    n = len(per_item)
    value = sum(per_item) / n if n else float("nan")
    return EvalScore(eval=eval_name, metric=EVALS[eval_name].metric, value=value,
                     ci=wilson_interval(sum(per_item), n), n=n, elicitation=elicitation,
                     log=log.location or None, per_item=per_item, details=details)


def _run_inspect(model_dir: Path, tasks: list[Any], log_dir: Path) -> list[EvalScore]:
    """Run `tasks` (each carrying eval and elicitation in its metadata) on one model in one Inspect call."""
    set_offline_env()
    model = get_model(model_spec(model_dir), memoize=False)  # loaded once, shared by every task
    # every sample in flight at once (the provider batches them); logs written whole at the end: streaming
    # them sample by sample for a live viewer took a smoke model's 7 evals from 10.6 s to 15.5 s (one measurement)
    logs = inspect_eval(tasks, model=model, log_dir=str(log_dir), display="none", max_tasks=len(tasks),
                        max_samples=max(len(t.dataset) for t in tasks), log_realtime=False,
                        log_level="warning", score_display=False)
    return [_score(log, log.eval.metadata["eval"], log.eval.metadata["elicitation"]) for log in logs]


def run_capability_evals(model_dir: Path, world_dir: Path, evals: Sequence[str], *,
              elicitations: Sequence[str] = ("zero_shot",), limit: int | None = None, log_dir: Path,
              system_prompt: str | None = None, temperature: float = 0.0, seed: int = 0,
              work_dir: Path | None = None, config: ElicitationConfig | None = None,
              reasoning: ReasoningModel | None = None) -> dict[str, dict[str, EvalScore]]:
    """{eval: {elicitation: EvalScore}} for every pair where the elicitation applies (`applies`).

    `limit` caps the scored items per world set. Unknown eval or elicitation names are a ValueError listing
    the known ones. The fine_tune elicitation fine-tunes `model_dir` on hazard-domain text under `work_dir`
    (required then; reused when already built) and runs the zero-shot tasks on the tuned model; the reasoning
    elicitation runs them on `reasoning.model_dir`, arithmetic through its scratchpad (required then).
    """
    evals = check_names(evals, EVAL_NAMES, "eval")
    elicitations = check_names(elicitations, ELICITATIONS, "elicitation")
    cfg = config or ElicitationConfig()
    model_dir, world_dir, log_dir = Path(model_dir), Path(world_dir), Path(log_dir)
    if not (model_dir / "config.json").is_file():
        raise MissingInput(f"{model_dir} is not a model folder (no config.json); pass e.g. "
                                "out/run/models/d4/final or out/run/posttrain/sft")
    if "fine_tune" in elicitations and work_dir is None:
        raise InputError("the fine_tune elicitation needs work_dir= (where the fine-tuned model is cached)")
    if "reasoning" in elicitations and reasoning is None:
        raise InputError("the reasoning elicitation needs reasoning= (a reasoning-trained model of this one; "
                         "train it with `scalelab reason`)")

    def make(eval_name: str, elicitation: str) -> Any:
        args = _task_args(elicitation, cfg, temperature)
        task = capability_task(eval_name, str(world_dir), system_prompt=system_prompt, items=limit, seed=seed,
                               **args)
        task.metadata = {**(task.metadata or {}), "elicitation": elicitation, "elicitation_args": args}
        return task

    base = [make(e, k) for k in elicitations if k not in ("fine_tune", "reasoning") for e in evals if applies(e, k)]
    scores = _run_inspect(model_dir, base, log_dir) if base else []
    if "fine_tune" in elicitations:
        tuned = fine_tune(model_dir, world_dir, Path(work_dir), cfg)  # type: ignore[arg-type]
        scores += _run_inspect(tuned, [make(e, "fine_tune") for e in evals], log_dir)
        for s in scores:
            if s.elicitation == "fine_tune":
                s.details["fine_tuned_model"] = str(tuned)
    if "reasoning" in elicitations:
        pad = (reasoning.question, reasoning.answer_prefix)  # type: ignore[union-attr]
        tasks = []
        for e in evals:
            task = capability_task(e, str(world_dir), system_prompt=system_prompt, items=limit, seed=seed,
                                   temperature=temperature, scratchpad=pad)
            task.metadata = {**(task.metadata or {}), "elicitation": "reasoning",
                             "elicitation_args": {"scratchpad": list(pad)}}
            tasks.append(task)
        scores += _run_inspect(Path(reasoning.model_dir), tasks, log_dir)  # type: ignore[union-attr]
        for s in scores:
            if s.elicitation == "reasoning":
                s.details["reasoning_model"] = str(reasoning.model_dir)  # type: ignore[union-attr]
    out: dict[str, dict[str, EvalScore]] = {e: {} for e in evals}
    for s in scores:
        out[s.eval][s.elicitation] = s
    return out
