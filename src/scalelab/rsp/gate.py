"""The deployment gate: a model that crossed a capability threshold ships only with its safeguards met.

`scalelab rsp assess` writes `rsp_determination.json` next to the model's weights: the weights' hash,
the policy's name and hash, the ASL, the crossed thresholds and the safeguards that level requires.
`scalelab rsp safeguards` measures those safeguards and records whether they passed (and where the
output filter it built lives). Two readers:

- `gate(model_dir, policy)`: ok unless a threshold was crossed and the safeguards its level requires are
  not all measured and passed. Met means every REQUIRED safeguard of the determined level has a recorded
  result, measured for that level against the policy's criterion, with a value and a pass; a required
  safeguard that is missing from the record, unmeasured (no value), judged against another criterion or
  failed refuses, and the reasons name each one. A level the policy defines no safeguards for is never met.
  What was recorded beyond the requirement neither helps nor hurts. Only crossed thresholds gate: the
  baseline level's safeguards are measured and reported, not enforced here, as the issue's gate asks. A
  missing, stale (weights changed) or other-policy determination is a user error (`GateError`): the CLI
  exits 2; a refusal exits 1; ok exits 0.
- `check_serving(model_dir, safeguards_on)`: what `scalelab chat` calls. It raises `GateRefused` when the
  determination says the model needs safeguards and they are switched off, or cannot be switched on
  (a required safeguard missing, unmeasured or failed, by the gate's rule; no output filter built); with
  them on it returns the sidecar, whose `output_filter` the chat loop applies to every reply. A model never
  assessed has no sidecar and is served as is (there is nothing to enforce); a sidecar whose weights hash
  no longer matches is refused.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.artifacts import atomic_write_json, atomic_write_text
from scalelab.errors import InputError
from scalelab.rsp.assess import Assessment, model_sha256
from scalelab.rsp.policy import Policy, asl_name
from scalelab.rsp.safeguards.catalogue import criterion, parse_bounds

DETERMINATION_FILE = "rsp_determination.json"


class GateError(InputError):
    """The gate cannot decide (no determination, stale weights, another policy); the message says what to run."""


class GateRefused(RuntimeError):
    """The model needs safeguards that are off, unmeasured or failing; serving it is refused."""


@dataclass
class GateResult:
    ok: bool
    reasons: list[str]
    asl: int
    crossed: list[str] = field(default_factory=list)
    required_safeguards: dict[str, dict[str, float]] | None = None
    safeguards_met: bool | None = None


def write_determination(model_dir: Path, a: Assessment, report: Path | None = None) -> Path:
    """The sidecar next to the weights (replaces an earlier one, and with it any safeguards verdict)."""
    path = Path(model_dir) / DETERMINATION_FILE
    atomic_write_json(path, {
        "model_sha256": a.model_sha256, "policy_name": a.policy_name, "policy_sha256": a.policy_sha256,
        "asl": a.asl, "crossed": list(a.crossed), "required_safeguards": a.required_safeguards,
        "safeguards_met": None, "safeguards": None, "output_filter": None,
        "capability_report": None if report is None else str(Path(report).resolve()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return path


def read_determination(model_dir: Path) -> dict[str, Any] | None:
    """The sidecar's content, or None when the model was never assessed."""
    path = Path(model_dir) / DETERMINATION_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise GateError(f"{path} is not valid JSON ({err}); re-run `scalelab rsp assess` on the model") from err


def _current(model_dir: Path, policy: Policy | None) -> dict[str, Any]:
    """The sidecar, checked against the weights on disk and (if given) the policy; GateError otherwise."""
    model_dir = Path(model_dir)
    det = read_determination(model_dir)
    if det is None:
        raise GateError(f"{model_dir} has no {DETERMINATION_FILE}; run `scalelab rsp assess --policy FILE "
                        f"{model_dir}` first")
    if policy is not None and det.get("policy_sha256") != policy.sha256:
        raise GateError(f"{model_dir} was assessed under policy {det.get('policy_name')!r} "
                        f"(sha256 {str(det.get('policy_sha256'))[:12]}…), not {policy.name!r} "
                        f"(sha256 {policy.sha256[:12]}…); re-run `scalelab rsp assess` with this policy")
    if det.get("model_sha256") != model_sha256(model_dir):
        raise GateError(f"{model_dir}'s weights changed since they were assessed; re-run `scalelab rsp assess`")
    return det


def unmet_safeguards(required: Mapping[str, Mapping[str, float]] | None, results: Sequence[Mapping[str, Any]],
                     asl: int) -> list[str]:
    """One reason per required safeguard without a measured, passing result ([] when all are met).

    `results` are the recorded results for level `asl` (dicts with name, metric, value, criterion, passed and
    optionally observed). A result counts only when it was judged against the criterion the policy sets for
    this level (`catalogue.criterion`), has a value, and passed; every result recorded for a required
    safeguard must pass.
    """
    if required is None:
        return [f"the policy defines no safeguards for {asl_name(asl)}, so they can never be met"]
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        by_name.setdefault(str(r["name"]), []).append(r)
    rerun = "run `scalelab rsp safeguards --policy FILE MODEL`"
    out = []
    for name, bounds in required.items():
        want = criterion(parse_bounds(name, bounds))
        got = by_name.get(name)
        if not got:
            out.append(f"{name} ({want}) has not been measured for {asl_name(asl)}; {rerun}")
        for r in got or []:
            if r.get("criterion") != want:
                out.append(f"{name} was judged against {r.get('criterion')!r}, not {asl_name(asl)}'s {want}; {rerun}")
            elif not _measured(r.get("value")):
                out.append(f"{name}: {r.get('metric')} was not measured ({want} cannot be checked)")
            elif not r.get("passed"):
                out.append(f"{name}: {_observed(r)} fails {want}")
    return out


def _measured(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _observed(r: Mapping[str, Any]) -> str:
    """The measured values of a result, e.g. "precision=0.950, recall=0.800" (unmeasured ones as –)."""
    observed = r.get("observed") or {r["metric"]: r["value"]}
    return ", ".join(f"{k}={v:.3f}" if _measured(v) else f"{k}=–" for k, v in observed.items())


def _unmet(det: dict[str, Any]) -> list[str]:
    """Why the determination's required safeguards are not met ([] when they are): the recorded results count
    only when they were measured for the determined level (the stored `safeguards_met` flag is not trusted)."""
    asl = int(det["asl"])
    results = (det.get("safeguards") or []) if det.get("safeguards_asl") == asl else []
    return unmet_safeguards(det.get("required_safeguards"), results, asl)


def gate(model_dir: Path, policy: Policy) -> GateResult:
    """May this model be deployed under `policy`? (See the module docstring for the rule.)"""
    det = _current(model_dir, policy)
    crossed, asl = list(det.get("crossed") or []), int(det["asl"])
    unmet = _unmet(det)
    result = GateResult(ok=True, reasons=[], asl=asl, crossed=crossed,
                        required_safeguards=det.get("required_safeguards"), safeguards_met=not unmet)
    if not crossed:
        result.reasons = [f"no capability threshold crossed; {asl_name(asl)} (the policy's baseline)"]
        return result
    head = f"crossed {', '.join(crossed)}, which requires {asl_name(asl)} safeguards"
    result.ok = not unmet
    result.reasons = [f"{head}: all measured and met"] if not unmet else [f"{head}: not met", *unmet]
    return result


def check_serving(model_dir: Path, safeguards_on: bool) -> dict[str, Any] | None:
    """Raise `GateRefused` unless the model may be served with safeguards `safeguards_on`; returns the sidecar
    (None for a model never assessed). With safeguards on, the sidecar's `output_filter` must exist."""
    model_dir = Path(model_dir)
    if read_determination(model_dir) is None:
        return None
    try:
        det = _current(model_dir, None)
    except GateError as err:
        raise GateRefused(str(err)) from err
    if not det.get("crossed"):
        return det
    need = f"{model_dir} crossed {', '.join(det['crossed'])} and needs {asl_name(int(det['asl']))} safeguards"
    if not safeguards_on:
        raise GateRefused(f"{need}; serve it only with its safeguards switched on (--safeguards on)")
    unmet = _unmet(det)
    if unmet:
        raise GateRefused(f"{need}, which cannot be switched on: {'; '.join(unmet)}")
    filt = det.get("output_filter")
    if not filt or not Path(filt).exists():
        raise GateRefused(f"{need}, but no output filter was built for it; run `scalelab rsp safeguards`")
    return det


def serving_filter(model_dir: Path, safeguards_on: bool) -> Any:
    """The OutputFilter to apply to replies (None when safeguards are off or none was built); raises
    `GateRefused` as `check_serving` does. With safeguards on, a filter built for the model is applied even
    when its determination does not require one."""
    det = check_serving(model_dir, safeguards_on)
    path = (det or {}).get("output_filter")
    if not safeguards_on or not path or not Path(path).exists():
        return None
    from scalelab.rsp.safeguards import OutputFilter

    return OutputFilter.load(Path(path), model_dir=Path(model_dir))


def record_safeguards(model_dir: Path, results: Sequence[Any], *, output_filter: Path | None,
                      report: Path | None = None) -> dict[str, Any]:
    """Store measured safeguards (SafeguardResult objects) in the sidecar; met = every safeguard the
    determination requires has a measured, passing result among them (`unmet_safeguards`; a level that
    requires nothing is met, one the policy leaves undefined never is)."""
    det = _current(model_dir, None)
    recorded = [_recorded(r) for r in results]
    det.update({
        "safeguards_met": not unmet_safeguards(det.get("required_safeguards"), recorded, int(det["asl"])),
        "safeguards_asl": int(det["asl"]),
        "safeguards": recorded,
        "output_filter": None if output_filter is None else str(Path(output_filter).resolve()),
        "safeguards_report": None if report is None else str(Path(report).resolve()),
        "safeguards_measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    atomic_write_json(Path(model_dir) / DETERMINATION_FILE, det)
    return det


def measure_required(model_dir: Path, policy: Policy, world_dir: Path, out_dir: Path, *,
                     sae_dir: Path | None = None, limit: int | None = None) -> dict[str, Any]:
    """`scalelab rsp safeguards`: measure what the model's determined level requires, write the safeguards
    report (Markdown + JSON) in `out_dir`, and record the verdict in the sidecar."""
    from scalelab.rsp.safeguards import measure_safeguards
    from scalelab.rsp.safeguards.suite import CLASSIFIER_DIR

    det = _current(model_dir, policy)
    asl = int(det["asl"])
    required = policy.required_safeguards(asl)
    out_dir = Path(out_dir)
    work = out_dir / "safeguards_work"
    results = [] if not required else measure_safeguards(Path(model_dir), Path(world_dir), required,
                                                         sae_dir=sae_dir, limit=limit, work_dir=work)
    # the hazard classifier measure_safeguards trained and saved is what OutputFilter.load reads
    filt = work / CLASSIFIER_DIR if results and (work / CLASSIFIER_DIR).is_dir() else None
    unmet = unmet_safeguards(required, [_recorded(r) for r in results], asl)
    report = {"model_dir": str(Path(model_dir).resolve()), "policy_name": policy.name,
              "policy_sha256": policy.sha256, "asl": asl, "crossed": det.get("crossed") or [],
              "required": required, "results": [_result_dict(r) for r in results],
              "met": None if required is None else not unmet, "unmet": unmet,
              "output_filter": None if filt is None else str(filt),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_json(out_dir / "safeguards_report.json", report)
    atomic_write_text(out_dir / "safeguards_report.md", safeguards_report_markdown(report))
    if required is not None:
        record_safeguards(model_dir, results, output_filter=filt, report=out_dir / "safeguards_report.md")
    return report


def _recorded(r: Any) -> dict[str, Any]:
    """What the sidecar keeps of a SafeguardResult: enough for the gate to check it against the policy."""
    return {"name": r.name, "metric": r.metric, "value": float(r.value), "criterion": r.criterion,
            "passed": bool(r.passed), "observed": dict((r.details or {}).get("observed") or {})}


def _result_dict(r: Any) -> dict[str, Any]:
    return {"name": r.name, "metric": r.metric, "value": float(r.value), "criterion": r.criterion,
            "passed": bool(r.passed), "details": r.details}


def safeguards_report_markdown(report: dict[str, Any]) -> str:
    """The safeguards report in Markdown: each required safeguard, its measured metric and criterion."""
    asl = asl_name(int(report["asl"]))
    lines = [f"# Safeguards report — {Path(report['model_dir']).name}", "",
             f"Model `{report['model_dir']}`, policy **{report['policy_name']}** "
             f"(sha256 `{report['policy_sha256'][:16]}…`), determined {asl} "
             f"(crossed: {', '.join(report['crossed']) or 'none'}).", ""]
    if report["required"] is None:
        return "\n".join([*lines, f"The policy defines no safeguards for {asl}: they cannot be met."]) + "\n"
    if not report["required"]:
        return "\n".join([*lines, f"{asl} requires no safeguards."]) + "\n"
    lines += [f"**{asl} safeguards {'met' if report['met'] else 'NOT met'}.** Each criterion was checked by "
              "running the safeguard; met means every safeguard the level requires was measured and passed.", "",
              "| safeguard | measured | criterion | passed |", "|---|---|---|---|"]
    for r in report["results"]:
        observed = (r.get("details") or {}).get("observed") or {r["metric"]: r["value"]}
        measured = ", ".join(f"{k} {v:.3f}" if _measured(v) else f"{k} –" for k, v in observed.items())
        lines.append(f"| {r['name']} | {measured} | {r['criterion']} | {'yes' if r['passed'] else '**no**'} |")
    if report.get("unmet"):
        lines += ["", "Not met:", "", *[f"- {u}" for u in report["unmet"]]]
    if report.get("output_filter"):
        lines += ["", f"Output filter for serving: `{report['output_filter']}` "
                  "(`scalelab chat --safeguards on` applies it)."]
    return "\n".join(lines) + "\n"
