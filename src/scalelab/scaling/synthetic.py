"""Synthetic data past the data wall: model-written documents, as is or checked by the world, and their recursion.

Arms, every one trained for the same steps on U real tokens (the data-constrained budget) plus S more:

- `repeat`: nothing more (the real tokens repeated to fill the steps);
- `synthetic`: S tokens a writer model wrote, as it wrote them;
- `verified`: S tokens written the same way, keeping only documents the world's checker passes
  (`world.verify`: no wrong sum, no false fact);
- `fresh`: the next S real tokens (what the budget would give if it were not constrained).

How much of the repeat→fresh loss gap an arm closes is `gap_closed` = (L_repeat − L_arm)/(L_repeat − L_fresh),
defined only when fresh data beats repetition by more than `MIN_GAP_FRAC` of the repeat loss: below that the
denominator is noise (or negative), and the ratio would read as a share of a gap that is not there (`gap_closed`
is then null and `gap["closable"]` false). The written-text figures separate what was sampled from what was kept
(`doc_stats`): the verified arm keeps only documents with no false claim, which includes documents that make no
checkable claim at all, so the share of those is reported beside it.
A written document continues the opening `prompt_tokens` tokens of a real document from U, and ends where the
writer ends it (its end-of-document token) or at `max_new_tokens`; text is re-tokenized with the run's
tokenizer, so any HF causal LM (SmolLM2 included) can write.

Recursion (Shumailov et al. 2024; Gerstgrasser et al. 2024): generation 0 is the `repeat` arm's model; it
writes S tokens; generation n+1 trains on generation n's output alone (`replace`) or on U real tokens plus
every generation's output so far (`accumulate`), and writes in turn. Per generation: loss, knowledge gap, and
the diversity of what it writes (`scaling.diversity`). Everything is a skippable artifact under
`RUN/synthetic/`: written text `written/<name>/docs.jsonl`, shards `shards/<name>/`, models `runs/<name>/`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scalelab import artifacts
from scalelab.artifacts import is_done
from scalelab.config import config_hash, to_dict
from scalelab.data.loader import read_index
from scalelab.data.tokenizer import load_tokenizer
from scalelab.errors import InputError
from scalelab.layout import FINAL
from scalelab.model.lm import load_lm
from scalelab.scaling.constrained_plots import plot_synthetic
from scalelab.scaling.data_constrained import batch_size, model_config, plan, train_all
from scalelab.scaling.diversity import distinct_ngrams, tail_coverage
from scalelab.scaling.sweep import eval_config, evaluate_sweep_run, run_train_config, sweep_workers
from scalelab.scaling.token_budget import documents, train_stream, whole_prefix, write_shards
from scalelab.stage import Context
from scalelab.train.loop import pretrain
from scalelab.world.reader import WorldDir
from scalelab.world.verify import check_text

if TYPE_CHECKING:
    from scalelab.presets import RunConfig
    from scalelab.world.entities import World

ARMS = ("repeat", "synthetic", "verified", "fresh")
MODES = ("replace", "accumulate")
DOCS = "docs.jsonl"
MAX_OVERSAMPLE = 6  # a verified budget stops after sampling this many times its size
# Fresh data must beat repetition by more than this share of the repeat loss for a gap to count as one: the
# data-constrained experiment reads repeated and fresh losses within 1% as equal (`data_constrained.knee`), and
# single-seed runs at the smallest rung differ by that much between equivalent data orders.
MIN_GAP_FRAC = 0.01


def _root(ctx: Context) -> Path:
    return ctx.layout.synthetic


def write_documents(ctx: Context, name: str, writer: Path, prompts: list[str], tokens: int, verified: bool,
                    seed: int) -> dict[str, Any]:
    """`tokens` run-tokenizer tokens of documents the writer continues from `prompts` (cycled), keeping only those
    the world's checker passes when `verified`; `written/<name>/docs.jsonl` holds every document sampled."""
    scfg = ctx.cfg.reasoning.synthetic
    out = _root(ctx) / "written" / name
    identity = {"tokens": tokens, "verified": verified, "seed": seed, "prompts": len(prompts),
                "sampling": {k: getattr(scfg, k) for k in ("prompt_tokens", "max_new_tokens", "temperature")}}

    def build(d: Path) -> dict[str, Any]:
        lm = load_lm(writer)
        tok = load_tokenizer(ctx.layout.tokenizer)
        world = WorldDir(ctx.layout.world).world()
        kept = sampled = 0
        rows: list[dict[str, Any]] = []
        start = 0
        while kept < tokens and sampled < MAX_OVERSAMPLE * tokens:
            batch = [prompts[(start + i) % len(prompts)] for i in range(scfg.sample_batch)]
            texts = lm.complete(batch, scfg.max_new_tokens, temperature=scfg.temperature,
                                row_seeds=[seed * 1_000_003 + start + i for i in range(len(batch))], seed=seed + start)
            start += len(batch)
            full = [prompt + cont for prompt, cont in zip(batch, texts, strict=True)]
            lengths = [len(ids) + 1 for ids in tok(full, add_special_tokens=False)["input_ids"]]  # + its BOS
            new, kept = screen(world, full, lengths, verified=verified, kept=kept, budget=tokens)
            rows += new
            sampled += sum(lengths)
            ctx.log(f"[synthetic:{name}] {kept}/{tokens} tokens kept, {sum(r['false'] == 0 for r in rows)}/"
                    f"{len(rows)} documents pass the checker")
        artifacts.atomic_write_text(d / DOCS, "".join(json.dumps(r) + "\n" for r in rows))
        return {"documents": len(rows), "kept_tokens": kept, "sampled_tokens": sampled,
                "short_of_budget": max(0, tokens - kept)}

    ctx.step(f"synthetic:write:{name}", "synthetic_text", out, identity, [writer, ctx.layout.tokenizer], build)
    rows = [json.loads(line) for line in (out / DOCS).read_text().splitlines()]
    # the figures are read back from the documents, so a folder written before they existed reports them too
    return {**artifacts.read_meta(out)["result"], **doc_stats(rows), "dir": str(out)}  # type: ignore[index]


def screen(world: World, texts: list[str], lengths: list[int], *, verified: bool, kept: int,
           budget: int) -> tuple[list[dict[str, Any]], int]:
    """One row per written text (its claims as the world's checker reads them, and whether it is kept) and the
    tokens kept so far: while under `budget`, a text is kept when it passes the checker or when not `verified`."""
    rows = []
    for text, n in zip(texts, lengths, strict=True):
        claims = check_text(world, text)
        keep = (claims.passes or not verified) and kept < budget
        kept += n if keep else 0
        rows.append({"text": text, "kept": keep, "checked": claims.checked, "false": claims.false})
    return rows, kept


def doc_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the checker found in every sampled document and in the kept ones. Kept documents of a verified arm
    pass by construction (`kept_false_claim_rate` 0), but a document with no checkable claim passes trivially,
    so `kept_no_claim_fraction` says how much of what was kept the filter could not vouch for."""
    kept = [r for r in rows if r["kept"]]

    def false_rate(rs: list[dict[str, Any]]) -> float | None:
        checked = sum(r["checked"] for r in rs)
        return sum(r["false"] for r in rs) / checked if checked else None

    return {"documents": len(rows), "kept_documents": len(kept),
            "pass_rate": sum(r["false"] == 0 for r in rows) / len(rows) if rows else None,
            "claims_checked": sum(r["checked"] for r in rows), "kept_claims_checked": sum(r["checked"] for r in kept),
            "sampled_false_claim_rate": false_rate(rows), "kept_false_claim_rate": false_rate(kept),
            "kept_no_claim_fraction": sum(r["checked"] == 0 for r in kept) / len(kept) if kept else None}


def gaps_closed(arms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Set each written arm's `gap_closed` (see the module docstring) and return the gap it is a share of: null
    shares when fresh data does not beat repetition by more than `MIN_GAP_FRAC` of the repeat loss."""
    repeat, fresh = arms["repeat"]["loss"], arms["fresh"]["loss"]
    span, noise = repeat - fresh, MIN_GAP_FRAC * abs(repeat)
    closable = span > noise
    for name in ("synthetic", "verified"):
        arms[name]["gap_closed"] = (repeat - arms[name]["loss"]) / span if closable else None
    return {"repeat_minus_fresh": span, "noise": noise, "closable": closable}


def kept_streams(ctx: Context, written: Path) -> list[np.ndarray]:
    """The kept documents of a written folder, each BOS-first in the run's tokenizer."""
    tok = load_tokenizer(ctx.layout.tokenizer)
    bos = int(read_index(ctx.layout.shards)["bos_id"])
    texts = [r["text"] for r in map(json.loads, (written / DOCS).read_text().splitlines()) if r["kept"]]
    return [np.asarray([bos, *ids]) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else []


def written_texts(written: Path) -> list[str]:
    return [r["text"] for r in map(json.loads, (written / DOCS).read_text().splitlines()) if r["kept"]]


def mix_shards(ctx: Context, name: str, parts: list[np.ndarray], parents: list[Path]) -> Path:
    out = _root(ctx) / "shards" / name

    def build(d: Path) -> dict[str, Any]:
        index = write_shards(ctx.layout.shards, d, parts)
        return {"tokens": index["splits"]["train"]["tokens"][0]}

    digest = hashlib.sha256()
    for p in parts:
        digest.update(np.asarray(p, dtype=np.int64).tobytes())
    ctx.step(f"synthetic:shards:{name}", "shards", out, {"tokens": int(sum(len(p) for p in parts)),
                                                         "sha256": digest.hexdigest()},
             [ctx.layout.shards, *parents], build)
    return out


@dataclasses.dataclass(frozen=True)
class SynthRun:
    name: str
    steps: int


def _run_step(ctx: Context, run: SynthRun) -> tuple[str, Path, dict[str, Any], list[Path], Any]:
    cfg: RunConfig = ctx.cfg
    scfg = cfg.reasoning.synthetic
    depth = scfg.depth or min(cfg.ladder)
    batch = scfg.batch_size or batch_size(cfg, cfg.reasoning.data_constrained)
    model_cfg = model_config(cfg, depth)
    train_cfg = run_train_config(cfg, run.steps * batch * cfg.train.seq_len, batch)
    shards = _root(ctx) / "shards" / run.name
    identity = {"model": to_dict(model_cfg), "train": {k: v for k, v in to_dict(train_cfg).items()
                                                       if k not in ("progress", "log_every")}}

    def build(d: Path) -> dict[str, Any]:
        return pretrain(model_cfg, train_cfg, shards, d, tokenizer_dir=ctx.layout.tokenizer, resume=True,
                        name=run.name)

    return f"synthetic:{run.name}", _root(ctx) / "runs" / run.name, identity, [shards, ctx.layout.tokenizer], build


def train_synth_run(ctx: Context, run: SynthRun) -> dict[str, Any]:
    """One model on `shards/<name>` for `steps` steps (module level: `in_workers` pickles it)."""
    name, out, identity, parents, build = _run_step(ctx, run)
    return ctx.step(name, "model", out, identity, parents, build)


def synth_run_done(ctx: Context, run: SynthRun) -> bool:
    _, out, identity, parents, _ = _run_step(ctx, run)
    return is_done(out, "model", config_hash(identity), [str(Path(p).resolve()) for p in parents])


def _measure(ctx: Context, run: SynthRun, with_evals: bool) -> dict[str, Any]:
    cfg: RunConfig = ctx.cfg
    res = train_synth_run(ctx, run)
    out = {"loss": res["final_val_loss"], "tokens": res["tokens"], "params": res["params"], "knowledge_gap": None,
           "fact_recall": None}
    if with_evals:
        items = cfg.reasoning.synthetic.eval_items or cfg.evals.max_items
        ecfg = dataclasses.replace(eval_config(cfg), max_items=items)
        ev = evaluate_sweep_run(ctx, f"synthetic-{run.name}", _root(ctx) / "runs" / run.name,
                                _root(ctx) / "evals" / run.name, ecfg)
        out.update(knowledge_gap=ev.get("knowledge_gap"), fact_recall=ev.get("fact_recall"))
    return out


def _diversity(ctx: Context, written: Path, n: int) -> dict[str, float]:
    world = WorldDir(ctx.layout.world).world()
    return {"distinct_ngrams": distinct_ngrams([s.tolist()[1:] for s in kept_streams(ctx, written)], n),
            "tail_coverage": tail_coverage(world, written_texts(written))}


def run_synthetic(ctx: Context, writer: Path, *, with_evals: bool = True) -> dict[str, Any]:
    """The arms and the recursion (see the module docstring); the summary section."""
    cfg: RunConfig = ctx.cfg
    scfg, dcfg = cfg.reasoning.synthetic, cfg.reasoning.data_constrained
    if scfg.generations < 1:
        raise InputError(f"reasoning.synthetic.generations={scfg.generations} must be >= 1")
    t0 = time.perf_counter()
    index = read_index(ctx.layout.shards)
    bos, seq_len = int(index["bos_id"]), cfg.train.seq_len
    batch = scfg.batch_size or batch_size(cfg, dcfg)
    stream = train_stream(ctx.layout.shards)
    _, unique = plan(stream, bos, seq_len, batch, list(dcfg.epochs), scfg.unique_tokens or dcfg.unique_tokens)
    real = stream[: unique.tokens]
    extra = scfg.synthetic_tokens or unique.tokens
    steps = max(1, round(scfg.train_epochs * (unique.windows // batch)))
    tok = load_tokenizer(ctx.layout.tokenizer)
    prompts = [tok.decode(doc[1:1 + scfg.prompt_tokens].tolist()) for doc in documents(real, bos)]
    writer = Path(writer)
    # the arms
    fresh = whole_prefix(stream[unique.tokens:], extra, bos)
    raw = write_documents(ctx, "writer", writer, prompts, extra, False, cfg.train.seed)
    ver = write_documents(ctx, "writer-verified", writer, prompts, extra, True, cfg.train.seed + 1)
    parts = {"repeat": [real], "fresh": [real, fresh],
             "synthetic": [real, *kept_streams(ctx, Path(raw["dir"]))],
             "verified": [real, *kept_streams(ctx, Path(ver["dir"]))]}
    for name, p in parts.items():
        mix_shards(ctx, name, p, [writer] if name in ("synthetic", "verified") else [])
    arm_runs = [SynthRun(name, steps) for name in ARMS]
    workers = sweep_workers(scfg.workers, cfg.train.device, len(arm_runs))
    train_all(ctx, arm_runs, train_synth_run, workers, "synthetic", synth_run_done)
    arms = {r.name: {**_measure(ctx, r, with_evals), "added_tokens": int(sum(len(x) for x in parts[r.name][1:]))}
            for r in arm_runs}
    for name, p in parts.items():  # the diversity of what each arm adds (repeat: the real tokens it repeats)
        added = [d.tolist()[1:] for part in (p if name == "repeat" else p[1:]) for d in documents(part, bos)]
        arms[name]["distinct_ngrams"] = distinct_ngrams(added, scfg.ngram)
    gap = gaps_closed(arms)
    checks = ("pass_rate", "sampled_false_claim_rate", "kept_false_claim_rate", "kept_no_claim_fraction")
    arms["synthetic"].update({k: raw[k] for k in checks})
    arms["verified"].update({k: ver[k] for k in (*checks, "short_of_budget")})
    # the recursion
    gen0 = write_documents(ctx, "gen0", _root(ctx) / "runs" / "repeat" / FINAL, prompts, extra, False,
                           cfg.train.seed + 2)
    recursion: dict[str, list[dict[str, Any]]] = {}
    for mode in MODES:
        gens = [{"generation": 0, **{k: arms["repeat"][k] for k in ("loss", "knowledge_gap", "fact_recall")},
                 **_diversity(ctx, Path(gen0["dir"]), scfg.ngram), "pass_rate": gen0["pass_rate"]}]
        outputs = [Path(gen0["dir"])]
        for g in range(1, scfg.generations + 1):
            name = f"{mode}-g{g}"
            synth = [s for o in (outputs if mode == "accumulate" else outputs[-1:]) for s in kept_streams(ctx, o)]
            mix_shards(ctx, name, ([real] if mode == "accumulate" else []) + synth, [outputs[-1]])
            row = {"generation": g, **_measure(ctx, SynthRun(name, steps), with_evals)}
            wrote = write_documents(ctx, name, _root(ctx) / "runs" / name / FINAL, prompts, extra, False,
                                    cfg.train.seed + 2 + g)
            outputs.append(Path(wrote["dir"]))
            row.update(_diversity(ctx, Path(wrote["dir"]), scfg.ngram), pass_rate=wrote["pass_rate"])
            gens.append(row)
        recursion[mode] = gens
    real_docs = [d.tolist()[1:] for d in documents(real, bos)]
    result = {"depth": scfg.depth or min(cfg.ladder), "writer": str(writer), "unique_tokens": unique.tokens,
              "synthetic_tokens": extra, "steps": steps, "batch_size": batch, "arms": arms, "gap": gap,
              "recursion": recursion,
              "real_text": {"distinct_ngrams": distinct_ngrams(real_docs, scfg.ngram),
                            "tail_coverage": tail_coverage(WorldDir(ctx.layout.world).world(),
                                                           [tok.decode(d) for d in real_docs])},
              "config": to_dict(scfg)}
    png = plot_synthetic(result, _root(ctx) / "synthetic.png")
    result["plots"] = [ctx.layout.relative(png)] if png is not None else []
    result["seconds"] = round(time.perf_counter() - t0, 1)
    artifacts.atomic_write_json(_root(ctx) / "result.json", result)
    return result
