"""Fixtures for the web app's tests: one small run, one live server and one browser per test session.

The run is built for real but small: the smoke world, a random depth-1 Llama (`random_smoke_model`) served as the
ladder rung d1 and as a post-trained `sft`, a copy `gated` whose RSP determination crossed a threshold (so the gate
refuses it), an SAE on d1 with its feature store, a registry recording the stages with their lineage, a capability
report, and real computer-use trajectories (the oracle on one MiniWoB++ task, headless Chromium). The server is
`scalelab serve` in a subprocess on a free loopback port; the browser is Debian's Chromium driven by Playwright.
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


def _gated(run: Path, final: Path) -> Path:
    """posttrain/gated: d1's weights, assessed as having crossed CBRN-3 (its safeguards never measured)."""
    from scalelab.artifacts import model_sha256
    from scalelab.evals.capability.runner import EvalScore
    from scalelab.rsp.assess import assess_scores, write_capability_report
    from scalelab.rsp.gate import write_determination
    from scalelab.rsp.policy import load_policy

    gated = run / "posttrain" / "gated"
    shutil.copytree(final, gated)
    policy = load_policy("default")

    def score(ev: str, v: float) -> dict:
        return {"zero_shot": EvalScore(eval=ev, metric="accuracy", value=v, ci=(max(0.0, v - 0.05), v + 0.05), n=100,
                                       elicitation="zero_shot", log=None, per_item=[])}

    scores = {"hazard_mc": score("hazard_mc", 0.6), "hazard_freeform": score("hazard_freeform", 0.0),
              "general_capability": score("general_capability", 0.2)}
    a = assess_scores(policy, scores, model="gated", model_dir=gated, model_sha=model_sha256(gated))
    paths = write_capability_report(a, run / "rsp" / "gated")
    write_determination(gated, a, paths["markdown"])
    return gated


def _sae(run: Path, final: Path, d_model: int) -> None:
    import torch

    from scalelab.interp.features import compute_features
    from scalelab.interp.sae import SAEConfig, make_sae
    from scalelab.interp.saelens import save_sae

    torch.manual_seed(0)
    sae = make_sae(SAEConfig(arch="topk", d_in=d_model, d_sae=64, k=8))
    out = run / "interp" / "d1"
    save_sae(sae, out, {"model_name": str(final), "site": "resid_post.0"})
    compute_features(out, run / "world" / "val.jsonl", final, n_rows=24, seq_len=64)


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
    _sae(run, final, cfg.d_model)
    _registry(run, final)
    _trajectories(run)
    return run


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
