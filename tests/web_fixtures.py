"""Fixtures for the web app's tests: one small run, one live server and one browser per test session.

The run is built for real but small: the smoke world, a random depth-1 Llama (`random_smoke_model`) served as the
ladder rung d1 and as a post-trained `sft` (never assessed), a copy `gated` whose RSP determination crossed a
threshold with its safeguards never measured (so the gate refuses it), a copy `guarded` that crossed the same
threshold with every required safeguard recorded as met and an output filter built (so it is served only with
safeguards on, filtered), an SAE on d1 with its feature store (its contexts include a `<script>` text, to check
escaping), a registry recording the stages with their lineage, capability reports with a real Inspect log, a
scaling sweep's `fit.json` (what the scaling stage writes, fitted on a known law) and real computer-use
trajectories (the oracle on one MiniWoB++ task, headless Chromium). The server is `scalelab serve` in a subprocess
on a free loopback port; the browser is Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import random_smoke_model

CHROMIUM = "/usr/bin/chromium"
EVIL = "<script>alert('pwned')</script> Zorvath the otter lives in Ambrel."
ARTIFACTS = Path(os.environ.get("SCALELAB_TEST_ARTIFACTS", "test-artifacts")) / "web"


def _registry(run: Path, final: Path) -> None:
    from scalelab.layout import RunLayout
    from scalelab.registry import Registry

    layout = RunLayout(run)
    reg = Registry(layout.registry)
    with reg.run("world", {"preset": "smoke"}) as rid:
        reg.record_artifact(rid, "world", layout.world)
    with reg.run("tokenizer", {"vocab_size": 512}) as rid:
        reg.record_artifact(rid, "tokenizer", layout.tokenizer, parents=[layout.world])
    with reg.run("pretrain:d1", {"depth": 1}) as rid:
        reg.record_artifact(rid, "model", layout.rung("d1"), parents=[layout.tokenizer, layout.world])
    with reg.run("interp", {"k": 8}) as rid:
        reg.record_artifact(rid, "sae", layout.interp("d1"), parents=[layout.rung("d1"), layout.world])


def _assessed(run: Path, final: Path, name: str) -> Path:
    """posttrain/NAME: d1's weights, assessed as having crossed CBRN-3 (hazard MC 0.6 under the default policy)."""
    from scalelab.artifacts import model_sha256
    from scalelab.evals.capability.runner import EvalScore
    from scalelab.rsp.assess import assess_scores, write_capability_report
    from scalelab.rsp.gate import write_determination
    from scalelab.rsp.policy import load_policy

    model = run / "posttrain" / name
    shutil.copytree(final, model)
    policy = load_policy("default")

    def score(ev: str, v: float) -> dict:
        return {"zero_shot": EvalScore(eval=ev, metric="accuracy", value=v, ci=(max(0.0, v - 0.05), v + 0.05), n=100,
                                       elicitation="zero_shot", log=None, per_item=[])}

    scores = {"hazard_mc": score("hazard_mc", 0.6), "hazard_freeform": score("hazard_freeform", 0.0),
              "general_capability": score("general_capability", 0.2)}
    a = assess_scores(policy, scores, model=name, model_dir=model, model_sha=model_sha256(model))
    paths = write_capability_report(a, run / "rsp" / name)
    write_determination(model, a, paths["markdown"])
    return model


def _gated(run: Path, final: Path) -> Path:
    """posttrain/gated: crossed CBRN-3, its safeguards never measured; one real Inspect log beside its report."""
    from scalelab.evals.capability.runner import run_capability_evals

    gated = _assessed(run, final, "gated")
    run_capability_evals(gated, run / "world", ["hazard_mc"], limit=3, log_dir=run / "rsp" / "gated" / "logs")
    return gated


def _guarded(run: Path, final: Path) -> Path:
    """posttrain/guarded: crossed CBRN-3 with every safeguard its level requires recorded as measured and met, and
    an output filter built. The filter's probe is the strictest (it flags every text), so a test sees it act on
    whatever a random model replies; what is tested is that the app applies it, not how well it classifies."""
    import torch

    from scalelab.model.lm import load_lm
    from scalelab.rsp.gate import read_determination, record_safeguards
    from scalelab.rsp.safeguards.catalogue import judge, parse_bounds
    from scalelab.rsp.safeguards.classifier import DEFAULT_SITE, HazardClassifier
    from scalelab.rsp.safeguards.probe import LinearProbe
    from scalelab.rsp.safeguards.suite import CLASSIFIER_DIR

    guarded = _assessed(run, final, "guarded")
    required = read_determination(guarded)["required_safeguards"]
    results = []
    for name, b in required.items():
        bounds = parse_bounds(name, b)
        results.append(judge(name, bounds, {m: bound for m, _, bound in bounds}, {}))  # each exactly at its bound

    def flag_all(width: int) -> LinearProbe:  # p(hazardous) = σ(10) for every text
        return LinearProbe(torch.zeros(width), 10.0, torch.zeros(width), torch.ones(width))

    lm = load_lm(guarded)
    clf = HazardClassifier(lm.model, lm.tokenizer, guarded, DEFAULT_SITE, flag_all(1))
    clf.probe = flag_all(clf.features(["x"]).shape[1])
    filt = clf.save(run / "rsp" / "guarded" / "safeguards_work" / CLASSIFIER_DIR)
    record_safeguards(guarded, results, output_filter=filt)
    return guarded


def _sae(run: Path, final: Path, d_model: int) -> None:
    import torch

    from scalelab.interp.features import compute_features
    from scalelab.interp.sae import SAEConfig, make_sae
    from scalelab.interp.saelens import save_sae

    torch.manual_seed(0)
    sae = make_sae(SAEConfig(arch="topk", d_in=d_model, d_sae=64, k=8))
    out = run / "interp" / "d1"
    save_sae(sae, out, {"model_name": str(final), "site": "resid_post.0"})
    compute_features(out, _feature_text(run), final, n_rows=24, seq_len=64)


def _feature_text(run: Path) -> Path:
    """The world's validation text with `EVIL` after every third document: the feature store then holds contexts
    with markup in them, which every page must show as text."""
    rows = (run / "world" / "val.jsonl").read_text().splitlines()
    out = run / "interp" / "feature_text.jsonl"
    mixed = [line for i, row in enumerate(rows)
             for line in ([row, json.dumps({"text": EVIL})] if i % 3 == 2 else [row])]
    out.write_text("\n".join(mixed) + "\n")
    return out


def _fit(run: Path) -> None:
    """RUN/scaling/fit.json as the scaling stage writes it (`analyse_sweep`), on sweep records whose losses follow a
    known law (three fitted budgets, one hold-out budget 4x the largest), each run with a validation curve."""
    import numpy as np

    from scalelab.artifacts import atomic_write_json
    from scalelab.scaling.analysis import analyse_sweep

    rng = np.random.default_rng(0)
    records = []
    for budget, holdout in ((1e13, False), (3e13, False), (1e14, False), (4e14, True)):
        for n in np.geomspace(budget ** 0.5 / 60, budget ** 0.5 / 6, 4):
            d = budget / (6 * n)
            loss = (1.7 + 120 / n ** 0.34 + 150 / d ** 0.28) * (1 + 0.005 * rng.standard_normal())
            name = f"c{budget:.0e}-n{n:.0f}"
            folder = run / "scaling" / "runs" / name
            folder.mkdir(parents=True)
            curve = [{"step": s, "val_loss": loss + 2.0 / s} for s in (2, 4, 6, 8, 10)]
            (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
            records.append({"name": name, "params": float(n), "non_embedding_params": 0.8 * float(n),
                            "tokens": float(d), "train_flops": budget, "final_val_loss": float(loss),
                            "budget": budget, "holdout": holdout, "steps": 10, "dir": str(folder)})
    atomic_write_json(run / "scaling" / "fit.json", analyse_sweep(records, entropy_floor=None, n_bootstrap=8))


def _trajectories(run: Path) -> None:
    from scalelab.computer.evaluate import run_eval
    from scalelab.computer.suite import resolve

    run_eval("oracle", resolve("click-test"), split="heldout", episodes=1, out_dir=run / "computer" / "oracle",
             sandbox=False, max_steps=4)


def _peaked_model(run: Path, cfg) -> Path:
    """Replace d1 with a random Llama whose large init gives peaked, prompt-dependent logits, so greedy replies are
    not empty and steering has something to change (a default-init random model stops at once)."""
    import dataclasses

    import torch

    from scalelab.model.hf import save_hf
    from scalelab.model.llama import Llama

    torch.manual_seed(0)
    final = run / "models" / "d1" / "final"
    return Path(save_hf(Llama(dataclasses.replace(cfg, init_std=0.3)), final, tokenizer_dir=run / "tokenizer"))


def _metrics(run: Path) -> None:
    """A loss curve for d1 in the trainer's metrics.jsonl format, so the report page has a plot to draw."""
    rows = [{"step": s, "loss": 6.0 - s / 40, "tokens": s * 512} for s in range(5, 101, 5)]
    rows += [{"step": s, "val_loss": 6.1 - s / 45} for s in (25, 50, 75, 100)]
    (run / "models" / "d1" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="session")
def web_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("webrun")
    _, cfg = random_smoke_model(run)
    final = _peaked_model(run, cfg)
    _metrics(run)
    shutil.copytree(final, run / "posttrain" / "sft")
    _gated(run, final)
    _guarded(run, final)
    _sae(run, final, cfg.d_model)
    _registry(run, final)
    _trajectories(run)
    _fit(run)
    return run


@pytest.fixture(scope="session")
def docs(tmp_path_factory) -> Path:
    """A document folder holding a `<script>` (the API tests' --docs)."""
    d = tmp_path_factory.mktemp("docs")
    (d / "evil.md").write_text(EVIL)
    (d / "ok.txt").write_text("Brass lamps are polished weekly.")
    return d


@pytest.fixture(scope="session")
def client(web_run, docs):
    """The app in-process over the run, answering from `docs`."""
    from fastapi.testclient import TestClient

    from scalelab.web.app import ServeSettings, create_app

    return TestClient(create_app(ServeSettings(run=web_run, docs=docs)), base_url="http://127.0.0.1")


def chat_body(model: str = "d1", **kw) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Where does Peik live?"}], "temperature": 0,
            "max_tokens": 12, **kw}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def web_server(web_run) -> str:
    """`scalelab serve --out RUN` on a free loopback port; yields its base URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "scalelab", "serve", "--out", str(web_run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"scalelab serve did not start:\n{out[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, web_server, request):
    """A fresh page; its screenshot is saved under test-artifacts/web/<test>.png after the test."""
    context = browser.new_context(base_url=web_server, viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
