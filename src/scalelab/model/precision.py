"""Precision chosen by measurement: bf16 autocast where this host runs the model's matmuls faster in it.

CPUs of this project differ: on some hosts a bf16 matrix product runs 2–3× faster than fp32 (AMD EPYC with
avx512_bf16), on others at half its speed (Intel Xeon without AMX), and small matrices can invert either
(the bf16 kernels' fixed costs dominate). So `dtype=auto` on a CPU does not guess: it times the matrix
products the work will run (`matmul_shapes`: the projections of a model at its batch size), once per host and
shape set, in both precisions, and picks bf16 autocast only when it is faster by `MARGIN` (a slower or equal
bf16 would only cost accuracy). On CUDA, auto is bf16 autocast, as before. The choice and the measured rates
go into the artifact's result and the progress line; they are cached in `~/.cache/scalelab/precision.json`
(`SCALELAB_PRECISION_CACHE` overrides the path), so every run on a host makes the same choice and pays the
fraction of a second once. Tests inject the measurement (`measure=`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scalelab.artifacts import atomic_write_text
from scalelab.errors import InputError

MARGIN = 1.2  # bf16 must beat fp32 by this factor to be chosen
Shape = tuple[int, int, int]  # (m, k, n) of an (m, k) @ (k, n) product
Measure = Callable[[Sequence[Shape]], dict[str, float]]
PRECISIONS = ("auto", "fp32", "bf16")


def active_autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast runs in on `device_type` at this point of the call, or None outside autocast: code that
    allocates buffers or picks its own precision inside a caller's autocast region reads it here."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """bf16 (or other) autocast on `device`, or nothing for plain fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


@dataclass(frozen=True)
class Precision:
    """The precision a piece of work runs in, and why."""

    dtype: str  # "fp32" or "bf16" (autocast)
    reason: str  # "forced", "cuda", "measured" or "cached"
    rates: dict[str, float] = field(default_factory=dict)  # GFLOP/s per dtype on the work's shapes, when measured
    probe: str = "matmuls"  # what the rates timed: the work's matrix products, or e.g. "train-step" (the whole step)

    @property
    def autocast(self) -> torch.dtype | None:
        """The autocast dtype, or None for plain fp32."""
        return torch.bfloat16 if self.dtype == "bf16" else None

    def context(self, device: torch.device) -> AbstractContextManager[Any]:
        """The autocast region this precision runs its forward passes in (nothing for fp32)."""
        return autocast_context(device, self.autocast)

    def describe(self) -> str:
        if not self.rates:
            return f"{self.dtype} ({self.reason})"
        return (f"{self.dtype} ({self.reason}: bf16 {self.rates['bf16']:.0f} vs fp32 {self.rates['fp32']:.0f} "
                f"GFLOP/s, {self.probe})")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FP32 = Precision("fp32", "forced")  # what a model or SAE runs in until a precision is chosen for it


def matmul_shapes(d_model: int, d_ff: int, vocab_size: int, rows: int) -> list[Shape]:
    """The products one step of a Llama block stack runs at `rows` tokens: attention projections, the SwiGLU
    MLP and the unembedding (their forward shapes; the backward reuses the same sizes)."""
    return [(rows, d_model, d_model), (rows, d_model, 2 * d_ff), (rows, d_ff, d_model), (rows, d_model, vocab_size)]


def sae_shapes(d_in: int, d_sae: int, rows: int) -> list[Shape]:
    """The products of one SAE step at `rows` activations: the encoder (d_in → d_sae) and the decoder back."""
    return [(rows, d_in, d_sae), (rows, d_sae, d_in)]


def model_shapes(model: nn.Module, rows: int) -> list[Shape]:
    """`matmul_shapes` of a loaded model (scalelab's `Llama` or a HF causal LM) at `rows` tokens per forward."""
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "d_ff"):
        return matmul_shapes(cfg.d_model, cfg.d_ff, cfg.vocab_size, rows)
    hf = model.config  # type: ignore[union-attr]
    return matmul_shapes(int(hf.hidden_size), int(hf.intermediate_size), int(hf.vocab_size), rows)


def median_seconds(runs: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median seconds of each run, timed in alternation for `reps` rounds after one warm-up round (first calls pick
    kernels and allocate): a busy machine's stalls then hit every run alike and their ratio, which decides, holds
    better than any one time."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for rep in range(reps + 1):
        for name, run in runs.items():
            t = time.perf_counter()
            run()
            if rep:
                times[name].append(time.perf_counter() - t)
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def faster_dtype(rates: dict[str, float], margin: float = MARGIN) -> str:
    """"bf16" where its rate beats fp32's by `margin`, else "fp32" (a slower or equal bf16 would only cost
    accuracy)."""
    return "bf16" if rates["bf16"] >= margin * rates["fp32"] else "fp32"


def matmul_rates(shapes: Sequence[Shape], reps: int = 7) -> dict[str, float]:
    """GFLOP/s of the shapes' products in fp32 and bf16 on this CPU, timed by `median_seconds`."""
    gen = torch.Generator().manual_seed(0)
    flops = sum(2 * m * k * n for m, k, n in shapes)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    pairs = {name: [(torch.randn(m, k, generator=gen).to(dt), torch.randn(k, n, generator=gen).to(dt))
                    for m, k, n in shapes] for name, dt in dtypes.items()}

    def products(mats: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable[[], None]:
        def run() -> None:
            for a, b in mats:
                a @ b
        return run

    seconds = median_seconds({name: products(mats) for name, mats in pairs.items()}, reps)
    return {name: flops / s / 1e9 for name, s in seconds.items()}


def _host_key(shapes: Sequence[Shape]) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}|torch {torch.__version__}|threads {torch.get_num_threads()}|{sorted(shapes)}"


def cache_path() -> Path:
    env = os.environ.get("SCALELAB_PRECISION_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "scalelab" / "precision.json"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def choose_precision(requested: str, device: torch.device, shapes: Sequence[Shape], *,
                     measure: Measure | None = None, cache: Path | None = None, probe: str = "",
                     margin: float = MARGIN) -> Precision:
    """The precision for work on `device` whose matrix products are `shapes` (see the module docstring).

    `measure` replaces the matmul benchmark (a test's injected rates, or `train.precision_probe`'s timing of the
    whole step); `probe` names such a measurement in the cache key, so its rates never stand in for the matmul
    benchmark's on the same shapes or the other way round. `margin` is the factor bf16 must win by."""
    if requested not in PRECISIONS:
        raise InputError(f"dtype={requested!r} is unknown; use {', '.join(PRECISIONS)}")
    if requested != "auto":
        return Precision(requested, "forced")
    if device.type == "cuda":
        return Precision("bf16", "cuda")
    path = cache if cache is not None else cache_path()
    key = f"{probe}|{_host_key(shapes)}" if probe else _host_key(shapes)
    stored = _read_cache(path)
    if key in stored:
        rates = stored[key]
        reason = "cached"
    else:
        rates = {k: round(float(v), 2) for k, v in (measure or matmul_rates)(shapes).items()}
        reason = "measured"
        try:  # a cache that cannot be written only costs a re-measurement next time
            path.parent.mkdir(parents=True, exist_ok=True)
            # atomic: the sweep trains two models at once, and a reader must never see half a file
            atomic_write_text(path, json.dumps({**_read_cache(path), key: rates}, indent=1))
        except OSError:
            pass
    return Precision(faster_dtype(rates, margin), reason, rates, probe.split(" ")[0] if probe else "matmuls")
