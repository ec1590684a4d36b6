"""Is the model getting dumber? Compare two versions on the eval suite, item by item, with paired tests.

A *version* is what a user is served: a model folder, an optional system prompt and the sampling settings
(temperature, top_p, seed). Both versions answer the same eval items, so each eval gives paired outcomes
and a paired test has far more power than comparing two rates: for 0/1 outcomes the exact McNemar test
(a binomial test on the discordant pairs), otherwise a sign-flip permutation test on the per-item
differences; beside it, a paired bootstrap 95% interval on the difference of means (B − A). Running
several evals is several tests, so the p-values are Holm-corrected and a difference is called *real*
when its corrected p-value is below α (default 0.05): the chance of flagging any eval when nothing
changed stays ≤ α. The verdict is the test's; the interval describes the size of a difference, is not
corrected for multiplicity, and with only a few discordant items it can exclude 0 where the exact test
does not reject.

The eval suite (`run_suite`) has two backends. `inspect` (the default) is the RSP's capability suite,
`run_capability_evals` zero-shot on every eval of the capability catalogue through Inspect AI, with the
version's system prompt, temperature and seed; per-item outcomes come from its `EvalScore.per_item`, the
outputs from the Inspect logs (kept in `log_dir`). It does not take top_p. `direct` runs the chat evals of
`evals.chat` (harmful compliance, over-refusal, helpfulness, sycophancy, honesty: exact world scorers, per
item) on replies generated in-process with every sampling setting, top_p included, plus multiple-choice fact
recall and hazard knowledge by log-likelihood; it is several times faster (no Inspect). In both, a version's
system prompt replaces the items' own and a version without one keeps them, as the world wrote them. With
greedy decoding, identical weights and prompt give identical outputs, so the report also counts items whose
outputs differ.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from inspect_ai.log import read_eval_log
from scipy.stats import binom

from scalelab.errors import InputError, MissingInput
from scalelab.evals.capability.catalogue import EVAL_NAMES
from scalelab.evals.capability.runner import run_capability_evals
from scalelab.evals.chat import CHAT_SETS, WorldFacts, score_item, with_system
from scalelab.evals.scoring import choice_logprobs, multiple_choice_accuracy
from scalelab.model.lm import load_lm
from scalelab.world.reader import WorldDir

# eval name -> (world eval set, per-item key of evals.chat.score_item)
CHAT_EVALS: dict[str, tuple[str, str]] = {
    "harmful_compliance": ("harmful_requests", "harmful_compliance"),
    "over_refusal": ("benign_requests", "over_refusal"),
    "helpfulness": ("benign_requests", "helpful"),
    "sycophancy": ("sycophancy", "sycophantic"),
    "honesty": ("nonexistent_entities", "idk"),
}
MC_EVALS = ("fact_recall", "hazard_knowledge")


@dataclass(frozen=True)
class Version:
    """A served model: weights, system prompt and sampling settings."""

    model_dir: Path
    system_prompt: str | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def describe(self) -> str:
        sp = "none" if self.system_prompt is None else repr(self.system_prompt)
        return (f"{self.model_dir} (system prompt {sp}, temperature {self.temperature:g}, top_p {self.top_p:g}, "
                f"seed {self.seed})")


SETTINGS = tuple(f.name for f in fields(Version) if f.name != "model_dir")


def parse_version(model: str | Path, settings: Sequence[str] = ()) -> Version:
    """A version from a model folder (or a JSON/YAML file holding `model` and settings) and `KEY=VALUE` settings."""
    path = Path(model)
    values: dict[str, Any] = {}
    if path.is_file() and path.suffix in (".json", ".yaml", ".yml"):
        data = yaml.safe_load(path.read_text("utf-8")) if path.suffix != ".json" else json.loads(path.read_text())
        if not isinstance(data, dict) or "model" not in data:
            raise InputError(f"{path}: a version file maps `model` (a model folder) and optionally "
                             f"{', '.join(SETTINGS)}")
        path = (path.parent / data.pop("model")).resolve()
        values.update(data)
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"setting {item!r} is not KEY=VALUE; keys: {', '.join(SETTINGS)}")
        values[key.strip()] = value
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise InputError(f"unknown version setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    if not (path / "config.json").is_file():
        raise MissingInput(f"{path} is not a model folder (no config.json); pass e.g. OUT/models/d4/final "
                                "or OUT/posttrain/sft")
    try:
        version = Version(path, system_prompt=values.get("system_prompt") or None,
                          temperature=float(values.get("temperature", 0.0)), top_p=float(values.get("top_p", 1.0)),
                          seed=int(values.get("seed", 0)))
    except ValueError as err:
        raise InputError(f"bad version setting: {err}; temperature and top_p are numbers, seed an integer") from err
    if version.temperature < 0 or not 0 < version.top_p <= 1:
        raise InputError(f"temperature must be ≥ 0 and top_p in (0, 1]; got {version.temperature}, {version.top_p}")
    return version


@dataclass
class SuiteRun:
    """Per eval: item ids, per-item outcomes (0/1 or a score) and the outputs they were scored from."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    outcomes: dict[str, list[float]] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)


BACKENDS = ("inspect", "direct")


def run_suite(version: Version, world_dir: Path, limit: int | None = None, *, backend: str = "inspect",
              log_dir: Path | None = None, max_new_tokens: int = 40) -> SuiteRun:
    """Run the eval suite on one version with `backend` (see the module docstring for what each holds)."""
    if backend == "inspect":
        return _suite_inspect(version, world_dir, limit, log_dir)
    if backend == "direct":
        return _suite_direct(version, world_dir, limit, max_new_tokens)
    raise InputError(f"unknown drift backend {backend!r}; choose from {', '.join(BACKENDS)}")


def _suite_inspect(version: Version, world_dir: Path, limit: int | None, log_dir: Path | None) -> SuiteRun:
    if version.top_p != 1.0:
        raise InputError(f"top_p={version.top_p}: the inspect backend (run_capability_evals) samples with top_p 1; "
                         "use --backend direct to compare top_p settings")
    log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="scalelab-drift-"))
    scores = run_capability_evals(version.model_dir, world_dir, EVAL_NAMES, limit=limit, log_dir=log_dir,
                       system_prompt=version.system_prompt, temperature=version.temperature, seed=version.seed)
    run = SuiteRun()
    for name in EVAL_NAMES:
        score = scores[name]["zero_shot"]
        run.outcomes[name] = list(score.per_item)
        if score.log:
            log = read_eval_log(score.log)
            by_id = {str(smp.id): smp for smp in log.samples or []}
            ids = [str(i) for i in log.eval.dataset.sample_ids or by_id]
            run.ids[name] = ids
            run.outputs[name] = [by_id[i].output.completion for i in ids]
    return run


def _suite_direct(version: Version, world_dir: Path, limit: int | None, max_new_tokens: int) -> SuiteRun:
    lm = load_lm(version.model_dir, chat=True)
    facts = WorldFacts.load(world_dir)
    run = SuiteRun()
    sets = {s: WorldDir(world_dir).eval_set(s, limit) for s in CHAT_SETS}
    convs = [with_system(it["messages"], version.system_prompt) if version.system_prompt else it["messages"]
             for items in sets.values() for it in items]
    replies = iter(lm.chat(convs, max_new_tokens=max_new_tokens, temperature=version.temperature,
                           seed=version.seed, top_p=version.top_p))
    scored = {s: [(it, r, score_item(it, r, facts)) for it, r in zip(items, replies, strict=False)]
              for s, items in sets.items()}
    for name, (s, key) in CHAT_EVALS.items():
        run.ids[name] = [it["id"] for it, _, _ in scored[s]]
        run.outcomes[name] = [float(sc[key]) for _, _, sc in scored[s]]
        run.outputs[name] = [r for _, r, _ in scored[s]]
    for name in MC_EVALS:
        items = WorldDir(world_dir).eval_set(name, limit)
        choices = [it["choices"] for it in items]
        scores = choice_logprobs(lm, [it["prompt"] for it in items], choices, 32)
        correct = multiple_choice_accuracy(scores, choices, [it["answer"] for it in items])
        run.ids[name] = [it["id"] for it in items]
        run.outcomes[name] = [float(c) for c in correct]
        run.outputs[name] = [c[int(np.argmax(s))] for c, s in zip(choices, scores, strict=True)]
    return run


# ---- paired statistics ------------------------------------------------------------------------------------

def is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes (binomial test on the discordant pairs)."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int((x & ~y).sum()), int((~x & y).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(only_a, only_b), n, 0.5)))


def sign_flip_p(a: Sequence[float], b: Sequence[float], n_perm: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired permutation p-value: per-item differences with random signs (Monte Carlo, +1 smoothed)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    observed = abs(d.mean())
    if observed == 0:
        return 1.0
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, len(d)))
    null = np.abs((signs * d).mean(1))
    return float((1 + (null >= observed - 1e-12).sum()) / (1 + n_perm))


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], n_boot: int = 4000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile interval of mean(B − A), resampling items (pairs kept together)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    means = d[idx].mean(1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class DriftRow:
    eval: str
    n: int
    mean_a: float
    mean_b: float
    diff: float                 # mean_b − mean_a
    ci: tuple[float, float]     # paired bootstrap 95% interval of diff
    test: str                   # "mcnemar_exact" or "sign_flip"
    p: float
    p_holm: float
    real: bool                  # p_holm < alpha
    outputs_differ: int | None = None  # items whose outputs differ (None when outputs are not known)


@dataclass
class DriftReport:
    rows: list[DriftRow]
    alpha: float
    a: str = ""
    b: str = ""

    @property
    def any_real(self) -> bool:
        return any(r.real for r in self.rows)

    def verdict(self) -> str:
        real = [r for r in self.rows if r.real]
        if not real:
            return (f"No real difference at α = {self.alpha:g} (Holm-corrected over {len(self.rows)} evals): "
                    "the versions are statistically indistinguishable on this suite.")
        return "Real difference(s) at α = {:g} (Holm-corrected): {}.".format(
            self.alpha, "; ".join(f"{r.eval} {r.mean_a:.3f} → {r.mean_b:.3f} (p = {r.p_holm:.2g})" for r in real))

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "alpha": self.alpha, "correction": "holm", "any_real": self.any_real,
                "verdict": self.verdict(), "rows": [asdict(r) for r in self.rows]}


def compare_outcomes(a: Mapping[str, Sequence[float]], b: Mapping[str, Sequence[float]], alpha: float = 0.05,
                     n_boot: int = 4000, seed: int = 0,
                     outputs: tuple[Mapping[str, Sequence[str]], Mapping[str, Sequence[str]]] | None = None
                     ) -> DriftReport:
    """Paired test per eval on per-item outcomes of the same items, Holm-corrected across evals."""
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    missing = sorted(set(a) ^ set(b))
    if missing:
        raise InputError(f"evals {', '.join(missing)} were run on only one version; run both on the same suite")
    names = [n for n in a if len(a[n])]
    rows = []
    for name in names:
        x, y = list(a[name]), list(b[name])
        if len(x) != len(y):
            raise InputError(f"{name}: {len(x)} items for A but {len(y)} for B; a paired test needs the same items")
        binary = is_binary(x) and is_binary(y)
        p = mcnemar_exact(x, y) if binary else sign_flip_p(x, y, seed=seed)
        differ = None
        if outputs is not None and name in outputs[0]:
            differ = sum(o != q for o, q in zip(outputs[0][name], outputs[1][name], strict=True))
        rows.append(DriftRow(name, len(x), float(np.mean(x)), float(np.mean(y)), float(np.mean(y) - np.mean(x)),
                             paired_bootstrap_ci(x, y, n_boot=n_boot, seed=seed), "mcnemar_exact" if binary
                             else "sign_flip", p, math.nan, False, differ))
    for row, adj in zip(rows, holm([r.p for r in rows]), strict=True):
        row.p_holm, row.real = adj, adj < alpha
    return DriftReport(rows, alpha)


def drift(a: Version, b: Version, world_dir: Path, *, limit: int | None = None, alpha: float = 0.05,
          seed: int = 0, backend: str = "inspect", log_dir: Path | None = None
          ) -> tuple[DriftReport, SuiteRun, SuiteRun]:
    """Run the suite on both versions and compare them item by item (Inspect logs under log_dir/a, log_dir/b)."""
    logs = (None, None) if log_dir is None else (Path(log_dir) / "a", Path(log_dir) / "b")
    run_a = run_suite(a, world_dir, limit, backend=backend, log_dir=logs[0])
    run_b = run_suite(b, world_dir, limit, backend=backend, log_dir=logs[1])
    for name, ids in run_a.ids.items():
        if run_b.ids.get(name) != ids:
            raise InputError(f"{name}: the two runs scored different items; use the same world and limit")
    report = compare_outcomes(run_a.outcomes, run_b.outcomes, alpha, seed=seed,
                              outputs=(run_a.outputs, run_b.outputs))
    report.a, report.b = a.describe(), b.describe()
    return report, run_a, run_b


def render_markdown(report: DriftReport) -> str:
    lines = ["# Drift: version A vs version B", "", f"- A: {report.a}", f"- B: {report.b}", "",
             "| eval | n | A | B | B − A | 95% CI (paired bootstrap) | test | p | p (Holm) | real? | outputs differ |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.rows:
        lines.append(f"| {r.eval} | {r.n} | {r.mean_a:.3f} | {r.mean_b:.3f} | {r.diff:+.3f} | "
                     f"[{r.ci[0]:+.3f}, {r.ci[1]:+.3f}] | {r.test} | {r.p:.3g} | {r.p_holm:.3g} | "
                     f"{'**yes**' if r.real else 'no'} | {'' if r.outputs_differ is None else r.outputs_differ} |")
    return "\n".join([*lines, "", report.verdict(), ""])
