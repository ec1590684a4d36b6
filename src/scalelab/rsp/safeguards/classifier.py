"""The hazard classifier safeguard: a linear probe on a model's residual stream, as input and output classifier.

One probe reads pooled activations (`activations.pooled_activations`) of the served model itself at one
residual site and says whether a text is hazardous (`data.HAZARD_CONCEPTS`). The same probe screens
prompts (input classifier) and replies (output classifier); it is measured on each side separately with
precision and recall on held-out world data (`data.heldout_prompts` / `data.heldout_replies`), and on the
training split for comparison. The site defaults to the middle layer's `resid_post`; when an SAE exists it
is trained at the SAE's site so the probe and the SAE monitor read the same activations.

On disk (a folder): `classifier.json` (model folder, site, pooling, threshold, training metrics) and
`probe.safetensors`; `OutputFilter.load` reads it on the serving path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from scalelab.artifacts import atomic_write_bytes, atomic_write_json
from scalelab.errors import MissingInput
from scalelab.interp.sites import n_layers, parse_site
from scalelab.model.lm import LM, load_lm
from scalelab.rsp.safeguards.activations import POOLS, pooled_activations
from scalelab.rsp.safeguards.data import LabelledTexts, heldout_prompts, heldout_replies, training_texts
from scalelab.rsp.safeguards.probe import LinearProbe, binary_metrics, fit_logistic

CONFIG = "classifier.json"
WEIGHTS = "probe.safetensors"
DEFAULT_SITE = "resid_post.mid"


@dataclass
class HazardClassifier:
    """A probe bound to the model whose activations it reads."""

    model: nn.Module
    tokenizer: Any
    model_dir: Path
    site: str
    probe: LinearProbe
    max_len: int = 64
    pools: tuple[str, ...] = POOLS
    info: dict[str, Any] = field(default_factory=dict)

    def features(self, texts: Sequence[str]) -> torch.Tensor:
        site = parse_site(self.site, n_layers(self.model))
        return pooled_activations(self.model, self.tokenizer, site, texts, max_len=self.max_len, pools=self.pools)

    def scores(self, texts: Sequence[str]) -> list[float]:
        """p(hazardous) per text."""
        return self.probe.probabilities(self.features(texts)).tolist() if texts else []

    def flags(self, texts: Sequence[str]) -> list[bool]:
        return [s >= self.probe.threshold for s in self.scores(texts)]

    def evaluate(self, data: LabelledTexts) -> dict[str, Any]:
        """Precision/recall etc. on labelled texts, with recall per source of the positives."""
        flagged = self.flags(data.texts)
        out = binary_metrics(flagged, data.labels)
        by_source: dict[str, list[int]] = {}
        for f, src in zip(flagged, data.sources, strict=True):
            by_source.setdefault(src, []).append(int(f))
        out["flag_rate_by_source"] = {k: round(sum(v) / len(v), 4) for k, v in sorted(by_source.items())}
        out["removed_as_seen_in_training"] = dict(sorted(data.removed.items()))
        return out

    def save(self, out_dir: Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / WEIGHTS, safetensors_bytes(self.probe.state()))
        atomic_write_json(out / CONFIG, {"model_dir": str(Path(self.model_dir).resolve()), "site": self.site,
                                         "max_len": self.max_len, "pools": list(self.pools),
                                         "threshold": self.probe.threshold, **self.info})
        return out

    @classmethod
    def load(cls, path: Path, model_dir: Path | None = None, device: str = "cpu") -> HazardClassifier:
        """Read a saved classifier; `model_dir` overrides the model folder recorded in it."""
        path = Path(path)
        cfg_file = path / CONFIG
        if not cfg_file.is_file() or not (path / WEIGHTS).is_file():
            raise MissingInput(f"{path} holds no hazard classifier ({CONFIG} + {WEIGHTS}); train one with "
                                    "`scalelab rsp safeguards` or HazardClassifier.train")
        cfg = json.loads(cfg_file.read_text("utf-8"))
        mdir = Path(model_dir or cfg["model_dir"])
        lm = load_lm(mdir, device=device)
        probe = LinearProbe.from_state(load_file(path / WEIGHTS))
        info = {k: v for k, v in cfg.items() if k not in ("model_dir", "site", "max_len", "pools", "threshold")}
        return cls(lm.model, lm.tokenizer, mdir, cfg["site"], probe, int(cfg["max_len"]), tuple(cfg["pools"]), info)

    @classmethod
    def train(cls, model_dir: Path, world_dir: Path, *, site: str = DEFAULT_SITE, max_len: int = 64,
              max_per_source: int | None = 80, l2: float = 1e-2, seed: int = 0, device: str = "cpu",
              lm: LM | None = None) -> HazardClassifier:
        """Fit the probe on the world's training split (`data.training_texts`) at `site` of the model (`lm`, when
        already loaded)."""
        lm = lm if lm is not None else load_lm(model_dir, device=device)
        parse_site(site, n_layers(lm.model))  # a bad site fails here, naming the valid ones
        train = training_texts(world_dir, max_per_source=max_per_source, seed=seed)
        untrained = LinearProbe(torch.zeros(1), 0.0, torch.zeros(1), torch.ones(1))
        clf = cls(lm.model, lm.tokenizer, Path(model_dir), site, untrained, max_len)
        x = clf.features(train.texts)
        clf.probe = fit_logistic(x, train.labels, l2=l2)
        train_metrics = binary_metrics(clf.probe.predict(x), train.labels)
        clf.info = {"world_dir": str(world_dir), "l2": l2, "n_train": len(train), "n_train_hazardous":
                    sum(train.labels), "train": {k: train_metrics[k] for k in ("precision", "recall", "f1")}}
        return clf


def measure_classifier(clf: HazardClassifier, world_dir: Path, limit: int | None = None) -> dict[str, Any]:
    """Held-out precision and recall of the probe as input classifier (prompts) and output classifier (replies)."""
    return {"input": clf.evaluate(heldout_prompts(world_dir, limit)),
            "output": clf.evaluate(heldout_replies(world_dir, limit)),
            "site": clf.site, "train": clf.info.get("train"), "n_train": clf.info.get("n_train")}
