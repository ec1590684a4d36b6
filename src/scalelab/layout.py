"""The run folder of `scalelab run`, described in one place.

Every stage reads and writes under one output folder; this module is the only place that spells its
paths, so a reader finds the whole layout here and a stage never guesses a path from a folder name::

    RUN/
      config.json             the resolved RunConfig
      summary.json            every stage's section; report.md / report.html render it (+ PNG plots)
      runs.sqlite             registry: every stage with what it consumed and produced
      .lock                   held while a `scalelab run` writes here
      world/                  the synthetic world: train.jsonl, val.jsonl, world.json, sft.jsonl, evals/<set>.jsonl
      tokenizer/              byte-level BPE (tokenizer.json, loads with AutoTokenizer)
      shards/                 packed token shards + index.json
      models/d{N}/            one ladder rung: checkpoints, metrics, result.json
        final/                its HF folder (model.safetensors, config.json, tokenizer)
      evals/d{N}/             the rung's base evals (results.json)
      scaling/                IsoFLOP sweep and fits
        runs/<run>/  evals/<run>/  distilled/<run>/  fit.json  *.png
      interp/d{N}/            an SAE on the rung (SAELens layout) and its feature store
      interp/<study>/         superposition, probes, universality (+ d{N}-seed{S}/, a second seed), circuits,
                              steering, sae_scaling; text/ (a real corpus's sample the studies read)
      posttrain/base/         evals of the model before post-training
      posttrain/<step>/       each post-training step's HF folder (sft, sl_cai, rl_cai, character)
      computer/               computer use: results, trajectories and viewer per agent, the pixel agent
      rsp/<model>/            capability report, Inspect logs, safeguards of one assessed model
      reasoning/<task>/<step>/   a reasoning-trained model (sft, star, grpo, ...): HF folder + result.json
      reasoning/<task>/evals/<step>/   its pass@k / majority@k per difficulty, self-verification
      scaling/data_constrained/        repeated vs fresh data: subsets/, runs/<run>/, evals/<run>/, fit.json, *.png
      synthetic/              model-written data, verified or not, and its recursion: shards/, runs/, fit.json

Every path of a model that a later stage reads is a HF folder (`config.json` + safetensors); the folder a
stage records as the artifact (its `meta.json`) may be the one above it (`models/d{N}` for `final/`).
`RunLayout.of(path)` finds the run a model belongs to, for commands given only a model folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LADDER_PREFIX = "d"
FINAL = "final"


def rung_name(depth: int) -> str:
    """A ladder rung's name: `d{depth}`."""
    return f"{LADDER_PREFIX}{depth}"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (see the module docstring for the picture)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # --- files of the run itself
    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def registry(self) -> Path:
        return self.root / "runs.sqlite"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    # --- foundation artifacts
    @property
    def world(self) -> Path:
        return self.root / "world"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def models_root(self) -> Path:
        """The folder holding every ladder rung's folder."""
        return self.root / "models"

    def rung(self, name: str) -> Path:
        """A ladder rung's artifact folder (checkpoints, metrics); its weights are `model(name)`."""
        return self.models_root / name

    def model(self, name: str) -> Path:
        """A ladder rung's HF folder."""
        return self.rung(name) / FINAL

    def evals(self, name: str) -> Path:
        return self.root / "evals" / name

    # --- later stages
    @property
    def scaling(self) -> Path:
        return self.root / "scaling"

    @property
    def fit(self) -> Path:
        """The scaling stage's fits and forecast table."""
        return self.scaling / "fit.json"

    def sweep_run(self, name: str) -> Path:
        return self.scaling / "runs" / name

    def sweep_evals(self, name: str) -> Path:
        return self.scaling / "evals" / name

    def distilled(self, name: str) -> Path:
        return self.scaling / "distilled" / name

    def interp(self, name: str) -> Path:
        return self.root / "interp" / name

    def interp_study(self, study: str) -> Path:
        """One study of the `interp` stage beside the rung SAEs: superposition, probes, universality, circuits,
        steering, sae_scaling (and text, a real corpus's sample)."""
        return self.root / "interp" / study

    def interp_seed(self, name: str, seed: int) -> Path:
        """A second pretraining of rung `name` with another seed (universality); its HF folder is `final/`."""
        return self.interp_study("universality") / f"{name}-seed{seed}"

    @property
    def posttrain_root(self) -> Path:
        return self.root / "posttrain"

    def posttrain(self, step: str) -> Path:
        """A post-training step's HF folder (or `base`, the evals before post-training)."""
        return self.posttrain_root / step

    @property
    def computer(self) -> Path:
        return self.root / "computer"

    def rsp(self, name: str) -> Path:
        return self.root / "rsp" / name

    def capability_report(self, name: str) -> Path:
        return self.rsp(name) / "capability_report.md"

    @property
    def reasoning_root(self) -> Path:
        return self.root / "reasoning"

    def reasoning(self, task: str, step: str) -> Path:
        """A reasoning training step's HF folder (`step`: sft, star, grpo, grpo-s1, sft-direct, ...)."""
        return self.reasoning_root / task / step

    def reasoning_eval(self, task: str, step: str) -> Path:
        return self.reasoning_root / task / "evals" / step

    @property
    def data_constrained(self) -> Path:
        """Repeated vs fresh data (`scalelab scale data-constrained`, and the reasoning stage)."""
        return self.scaling / "data_constrained"

    @property
    def synthetic(self) -> Path:
        """Synthetic data, verified or not, and its recursion (`scalelab synth`, and the reasoning stage)."""
        return self.root / "synthetic"

    def relative(self, path: Path) -> str:
        """`path` relative to the run folder, as the summary records it."""
        return str(Path(path).relative_to(self.root))

    @classmethod
    def of(cls, path: Path | str) -> RunLayout | None:
        """The run a model (or any artifact) folder belongs to: the nearest folder above it holding a world
        with eval sets, or None when the path is not inside a run."""
        for d in [Path(path).resolve(), *Path(path).resolve().parents]:
            if (cls(d).world / "evals").is_dir():
                return cls(d)
        return None

    @staticmethod
    def model_label(model_dir: Path | str) -> str:
        """A model's name from its folder: the rung for `models/d4/final`, else the folder's own name."""
        model_dir = Path(model_dir).resolve()
        return model_dir.parent.name if model_dir.name == FINAL else model_dir.name
