"""A MiniWoB++ task page in a WebDriver-controlled Chromium: load, seed, read instruction, DOM and reward.

Both backends use it: the headless one shows the page alone, the desktop one shows it in a Chromium window
on the X display. It talks to the `miniwob` package's task pages through their own JavaScript API (the one
the package's gymnasium environment uses): `Math.seedrandom` seeds an instance, `core.startEpisodeReal`
starts it, `core.getUtterance` and `core.getDOMInfo` describe it, `WOB_DONE_GLOBAL` and
`WOB_RAW_REWARD_GLOBAL` score it. One browser serves every task: switching task is a page load, not a
new browser.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

from scalelab.computer.injection import Attack, hit_js, inject_js
from scalelab.errors import MissingInput

TASK_SIZE = (160, 210)  # MiniWoB's task area, CSS pixels, at the page's top left
_CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
_DRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def html_dir() -> pathlib.Path:
    import miniwob  # lazy: the computer extra is optional for the rest of scalelab

    return pathlib.Path(miniwob.__file__).parent / "html" / "miniwob"


def _find(env: str, candidates: tuple[str, ...], package: str) -> str:
    path = os.environ.get(env) or next((p for p in candidates if os.path.exists(p)), None)
    if not path or not os.path.exists(path):
        raise MissingInput(f"{package} not found (set {env} or run scripts/system-deps.sh, which installs "
                           f"the Debian package {package})")
    return path


def chrome_driver(args: list[str], user_data_dir: str, env: dict[str, str] | None = None) -> Any:
    """Start Chromium under chromedriver with the given command-line switches and a throwaway profile."""
    from selenium import webdriver  # lazy: optional dependency
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _find("MINIWOB_CHROME_BINARY", _CHROMIUM, "chromium")
    options.add_experimental_option("excludeSwitches", ["enable-automation"])  # no "controlled by" infobar
    scale = [] if any(a.startswith("--force-device-scale-factor") for a in args) else ["--force-device-scale-factor=1"]
    for a in [*args, *scale, f"--user-data-dir={user_data_dir}", "--no-first-run", "--no-default-browser-check",
              "--disable-dev-shm-usage", "--disable-extensions", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--no-sandbox",
              "--disable-smooth-scrolling"]:  # a wheel step lands at once, so the next read sees it
        # --no-sandbox: Chromium's own sandbox needs user namespaces that the outer sandbox already used
        options.add_argument(a)
    service = Service(_find("MINIWOB_CHROMEDRIVER", _DRIVER, "chromium-driver"), env=env)
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(0)
    return driver


def flatten(node: dict[str, Any], out: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """MiniWoB's DOM tree as a flat list of elements with geometry, text and value."""
    out = [] if out is None else out
    if node.get("tag") not in (None, "BODY", "HTML"):
        classes = node.get("classes")
        out.append({"ref": node.get("ref"), "tag": node.get("tag", ""), "id": node.get("id") or "",
                    "classes": classes if isinstance(classes, str) else "",
                    "text": node.get("text") or "", "value": node.get("value"),
                    "left": float(node.get("left", 0)), "top": float(node.get("top", 0)),
                    "width": float(node.get("width", 0)), "height": float(node.get("height", 0)),
                    "leaf": not node.get("children")})
    for child in node.get("children", []):
        flatten(child, out)
    return out


class MiniWoBPage:
    """Task-level operations on the page in `driver`; `offset` is where the page's (0, 0) is on the display
    and `scale` how many display pixels a CSS pixel takes."""

    def __init__(self, driver: Any, offset: tuple[int, int] = (0, 0), scale: float = 1.0):
        self.driver = driver
        self.offset, self.scale = offset, scale  # display pixel = offset + CSS pixel * scale
        self.loaded = ""
        self.attack: Attack | None = None
        self.hit = False

    def start(self, task: str, seed: int, attack: Attack | None = None, episode_ms: int = 60_000) -> None:
        """Load (if needed) and start one seeded instance; MiniWoB's own 10 s episode clock is set to
        `episode_ms` so a slow agent (an API round trip per step) is limited by steps, not wall time."""
        path = html_dir() / f"{task}.html"
        if not path.exists():
            raise MissingInput(f"MiniWoB task {task!r} not found in {path.parent}; `scalelab computer tasks` "
                               "lists the suite")
        if self.loaded != task or attack is not None or self.attack is not None:
            self.driver.get(path.as_uri())  # a fresh load also removes a previous episode's injected notice
            self.loaded = task
        self.driver.execute_script(f"core.EPISODE_MAX_TIME = {int(episode_ms)}; Math.seedrandom({seed});"
                                   "core.setDataMode('train'); core.startEpisodeReal();")
        for _ in range(40):
            if self.driver.execute_script("return WOB_TASK_READY;"):
                break
            time.sleep(0.025)
        self.attack, self.hit = attack, False
        if attack is not None:
            self.driver.execute_script(inject_js(attack))

    def state(self) -> tuple[str, dict[str, str], list[dict[str, Any]], dict[str, Any]]:
        """(utterance, fields, elements in display pixels, {done, reward, reason, attack_hit})."""
        d = self.driver.execute_script(
            "var u = core.getUtterance();"
            "return {u: u, dom: core.getDOMInfo(), done: WOB_DONE_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL,"
            " reason: WOB_REWARD_REASON};")
        u = d["u"]
        if isinstance(u, dict):
            utterance, fields = u["utterance"], {str(k): str(v) for k, v in u["fields"].items()}
        else:
            from miniwob.fields import get_field_extractor  # lazy: optional dependency

            utterance, fields = u, {k: v for k, v in get_field_extractor(self.loaded)(u)}
        elements = flatten(d["dom"])
        if self.attack is not None:  # the injected notice is in the DOM like any element
            self.hit = self.hit or bool(self.driver.execute_script(hit_js(self.attack)))
        ox, oy = self.offset
        for e in elements:
            e["left"], e["top"] = ox + e["left"] * self.scale, oy + e["top"] * self.scale
            e["width"], e["height"] = e["width"] * self.scale, e["height"] * self.scale
        raw = d["raw"] or 0.0
        return utterance, fields, elements, {"done": bool(d["done"]), "reward": float(raw),
                                             "reason": d.get("reason"), "attack_hit": self.hit}
