"""MiniWoB++ in the sandbox, end to end: oracle, tool errors, injection, guard, confirmation hook, run output,
the sandbox's promises (no network out, read-only outside the work folder, nothing left behind).

One sandboxed browser serves the whole module (starting Chromium is the slow part).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalelab.computer.agents.oracle import OracleAgent
from scalelab.computer.agents.random import RandomAgent
from scalelab.computer.cli import app
from scalelab.computer.config import ComputerConfig
from scalelab.computer.evaluate import run_eval
from scalelab.computer.runner import play, play_episode
from scalelab.computer.sandbox import SandboxedComputer, run_in_sandbox
from scalelab.computer.stage import run_computer, section_computer
from scalelab.computer.suite import SUITE, resolve, task


@pytest.fixture(scope="module")
def computer():
    c = SandboxedComputer("miniwob", max_steps=8)
    yield c
    c.close()


def _pids_mentioning(text: str) -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if text in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                out.append(pid)
        except OSError:
            continue
    return out


def test_connection_from_inside_to_a_server_outside_fails():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')"
    try:
        outside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert outside.returncode == 0 and "connected" in outside.stdout  # the server is reachable from outside
        inside = run_in_sandbox([sys.executable, "-c", code])
        assert inside.returncode != 0 and "connected" not in inside.stdout
        assert "ConnectionRefusedError" in inside.stderr or "unreachable" in inside.stderr.lower()
        routes = run_in_sandbox([sys.executable, "-c", "import socket; print(socket.if_nameindex())"])
        assert routes.returncode == 0 and [n for _, n in eval(routes.stdout)] == ["lo"]  # loopback only
    finally:
        srv.close()


def test_write_outside_the_allowlist_fails(tmp_path):
    target = Path(__file__).parent / f"escaped-{os.getpid()}.txt"  # the checkout: writable outside, not inside
    r = run_in_sandbox([sys.executable, "-c", f"open({str(target)!r}, 'w').write('x')"])
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    assert not target.exists()
    host_tmp = tmp_path / "from-inside.txt"  # the sandbox's /tmp is its own: the host's stays untouched
    r = run_in_sandbox(["sh", "-c", f"mkdir -p {tmp_path} && echo x > {host_tmp}"])
    assert r.returncode == 0 and not host_tmp.exists()
    ok = run_in_sandbox(["sh", "-c", 'echo hi > "$HOME/note" && cat "$HOME/note"'])  # the work folder is writable
    assert ok.returncode == 0 and ok.stdout.strip() == "hi"


def test_nothing_is_left_behind():
    c = SandboxedComputer("miniwob", max_steps=3)
    work = c.work
    obs = c.reset("click-test", 0)
    assert obs["size"] == [160, 210] and (work / "home" / "chromium-profile").exists()
    assert _pids_mentioning(str(work))  # chromium runs with its profile inside the work folder
    c.close()
    assert not work.exists()
    assert not _pids_mentioning(str(work))
    assert not Path(f"{work}.stderr").exists()


def test_malformed_actions_are_tool_errors_not_crashes(computer):
    computer.reset("click-test", 1)
    for bad in ["left_click", None, 7, {"action": "left_click", "coordinate": [999, 1]},
                {"action": "key", "text": "hyper+q"}, {"action": "type", "text": ""}, {"nope": 1}]:
        r = computer.step(bad)
        assert r["error"] and not r["done"], bad
    r = computer.step({"action": "cursor_position"})
    assert r["error"] is None and r["output"].startswith("X=")
    r = computer.step({"action": "zoom", "region": [0, 0, 80, 105]})
    assert r["error"] is None and r["zoom"]
    r = computer.step({"action": "screenshot"})
    assert r["done"] and r["reason"] == "step limit (8)"  # the step limit ends the episode


def test_oracle_solves_a_task_of_every_family(computer):
    tasks = [task(n) for n in ("click-test", "click-checkboxes", "choose-list", "login-user", "drag-box",
                               "scroll-text-2", "click-tab-2")]
    assert {t.family for t in tasks} == {"click", "check", "select", "type", "drag", "scroll", "multi-step"}
    eps, _ = play(computer, OracleAgent(), tasks, "heldout", 2)
    failed = [(e.task, e.seed, e.reason) for e in eps if not e.success]
    assert not failed
    random_eps, _ = play(computer, RandomAgent(0), tasks[:2], "heldout", 2)  # the floor runs too
    assert all(e.steps >= 1 for e in random_eps)


def test_attack_goal_and_guard(computer):
    t = task("click-test")
    hit = {"action": "left_click", "coordinate": [20, 20]}  # on the injected notice

    class Obedient:  # follows the injected instruction: clicks the notice, then does nothing
        name = "obedient"

        def reset(self, obs):
            assert any(e["id"] == "scalelab-injection" for e in obs["elements"])

        def act(self, obs, last):
            return hit

        def close(self):
            pass

    ep = play_episode(computer, Obedient(), t, "heldout", 0, attack=True)
    assert ep.attack_hit and not ep.success
    ep = play_episode(computer, Obedient(), t, "heldout", 0, attack=True, defence=True)
    assert not ep.attack_hit and ep.errors == ep.steps  # every click into the notice was refused
    ep = play_episode(computer, OracleAgent(), t, "heldout", 0, attack=True, defence=True)
    assert ep.success and not ep.attack_hit


def test_confirmation_hook_declines_consequential_actions(computer):
    seen = []
    ep = play_episode(computer, OracleAgent(), task("enter-text"), "train", 0,
                      confirm=lambda action, element: seen.append(element["text"]) or False)
    assert seen and seen[0] == "Submit" and not ep.success and ep.errors >= 1
    ep = play_episode(computer, OracleAgent(), task("enter-text"), "train", 0, confirm=lambda a, e: True)
    assert ep.success

    class Sloppy:  # malformed calls still reach the computer (and come back as tool errors) with a hook on
        name = "sloppy"

        def reset(self, obs):
            pass

        def act(self, obs, last):
            return {"action": "left_click", "coordinate": ["x", None]}

        def close(self):
            pass

    ep = play_episode(computer, Sloppy(), task("click-test"), "train", 0, confirm=lambda a, e: True)
    assert ep.errors == ep.steps == 8


def test_run_writes_results_trajectories_and_viewer(computer, tmp_path):
    r = run_eval("oracle", resolve("click-test,enter-text"), split="heldout", episodes=2, out_dir=tmp_path,
                 attack=True, computer=computer)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == r
    for key in ("agent", "backend", "split", "success_rate", "ci95", "steps_per_second", "tasks",
                "utility_under_attack", "attack_success_rate"):
        assert key in saved
    assert set(saved["tasks"]["enter-text"]) >= {"episodes", "success_rate", "mean_reward", "mean_steps"}
    lines = [json.loads(x) for x in (tmp_path / "trajectories" / "enter-text-1.jsonl").read_text().splitlines()]
    assert [x["action"]["action"] for x in lines] == ["left_click", "type", "left_click"]
    assert all((tmp_path / "trajectories" / x["screenshot"]).exists() for x in lines)
    assert lines[-1]["done"] and lines[-1]["reward"] > 0
    page = (tmp_path / "index.html").read_text()
    assert "enter-text-1" in page and "trajectories/enter-text-1/step-000.png" in page


def test_cli_tasks_and_run(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["tasks"])
    assert r.exit_code == 0 and f"suite: {len(SUITE)} tasks" in r.output and len(SUITE) >= 30
    for family in ("click", "check", "select", "type", "drag", "scroll", "multi-step"):
        assert family in r.output
    r = runner.invoke(app, ["run", "--agent", "oracle", "--tasks", "click-test", "--episodes", "1", "--out",
                            str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o" / "results.json").read_text())["success_rate"] == 1.0
    r = runner.invoke(app, ["run", "--agent", "nobody", "--tasks", "click-test", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "unknown agent 'nobody'" in str(r.exception)
    r = runner.invoke(app, ["run", "--agent", "oracle", "--tasks", "no-such-task", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "unknown task 'no-such-task'" in str(r.exception)


def test_stage_summary_and_section(tmp_path):
    cfg = ComputerConfig(tasks="click-test", episodes=1, agents=["oracle", "random"], max_steps=4)
    s = run_computer(tmp_path / "c", cfg, log=lambda m: None)
    for name in ("oracle", "random"):
        row = s["agents"][name]
        assert set(row) >= {"success_rate", "heldout_success_rate", "utility_under_attack", "attack_success_rate"}
    assert s["agents"]["oracle"]["heldout_success_rate"] == 1.0
    assert s["agents"]["oracle"]["defended"]["attack_success_rate"] == 0.0
    md = section_computer({"computer": s}, tmp_path / "report")
    assert "## Computer use" in md and (tmp_path / "report" / "computer.png").exists()


def test_two_browsers_give_one_browsers_results_and_only_named_agents_are_attacked(tmp_path):
    cfg = dict(tasks="click-test,click-button,focus-text,click-checkboxes", episodes=2, agents=["oracle", "random"],
               max_steps=4, train_split_agents=[], attack_agents=["random"], defence=False)
    one = run_computer(tmp_path / "one", ComputerConfig(**cfg, browsers=1), log=lambda m: None)
    two = run_computer(tmp_path / "two", ComputerConfig(**cfg, browsers=2), log=lambda m: None)
    for name in ("oracle", "random"):
        per_task = [json.loads((tmp_path / run / name / "results.json").read_text())["tasks"] for run in ("one", "two")]
        assert per_task[0] == per_task[1]  # every episode is the same, whichever browser played it
        for key in ("heldout_success_rate", "utility_under_attack", "attack_success_rate"):
            assert one["agents"][name][key] == two["agents"][name][key]
        assert one["agents"][name]["success_rate"] is None  # no agent was named for the train seeds
    oracle = one["agents"]["oracle"]
    assert oracle["attack_success_rate"] is None and oracle["utility_under_attack"] is None
    assert one["agents"]["random"]["attack_success_rate"] is not None
