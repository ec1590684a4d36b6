"""The oracle: a scripted agent that reads the page's DOM and acts only through the `computer` tool.

It validates the suite (a task it cannot solve is dropped, with the reason, in `suite.DROPPED`) and its
trajectories are the demonstrations the pixel agent clones. Each task has a planner: given the current
elements, the instruction's fields and a per-episode memory, return the next action. Planners re-read the
page every step, so multi-step tasks (a section that expands, a tab that switches) follow the page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from scalelab.computer.agents.base import centre, click

Elements = list[dict[str, Any]]
Planner = Callable[[Elements, dict[str, str], str, dict[str, Any]], dict[str, Any]]
PLANNERS: dict[str, Planner] = {}
_DONE = {"action": "wait", "duration": 0.0}  # nothing left to do: wait for the page to score the episode


def planner(*names: str) -> Callable[[Planner], Planner]:
    def register(fn: Planner) -> Planner:
        for n in names:
            PLANNERS[n] = fn
        return fn
    return register


_screen = {"height": 210}  # of the current observation (set by OracleAgent.act): below it is off screen


def _visible(e: dict[str, Any]) -> bool:
    return e["width"] > 0 and e["height"] > 0 and e["left"] >= 0 and 0 <= e["top"] < _screen["height"]


def find(els: Elements, tag: str | None = None, text: str | None = None, cls: str | None = None,
         id: str | None = None) -> list[dict[str, Any]]:
    return [e for e in els if _visible(e) and e.get("id") != "scalelab-injection"
            and (tag is None or e["tag"] == tag) and (text is None or e["text"].strip() == text)
            and (cls is None or cls in e["classes"].split()) and (id is None or e["id"] == id)]


def first(els: Elements, **kw: Any) -> dict[str, Any] | None:
    found = find(els, **kw)
    return found[0] if found else None


def submit(els: Elements) -> dict[str, Any]:
    for label in ("Submit", "submit", "Login", "Search"):
        b = first(els, text=label)
        if b:
            return click(b)
    return _DONE


def run_plan(mem: dict[str, Any], make: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    """Single-screen tasks: plan once from the first page, then play the plan."""
    if "plan" not in mem:
        mem["plan"] = make()
    return mem["plan"].pop(0) if mem["plan"] else _DONE


@planner("click-test", "focus-text")
def _click_only(els, f, u, mem):
    e = first(els, tag="BUTTON") or first(els, tag="INPUT_text")
    return click(e) if e else _DONE


@planner("click-test-2", "click-button", "unicode-test", "click-dialog-2")
def _button_by_text(els, f, u, mem):
    target = f.get("target") or f.get("button", "")
    if target.lower() == "x":
        e = first(els, cls="ui-dialog-titlebar-close")
    else:
        e = next((b for b in find(els, tag="BUTTON") if b["text"].strip().lower() == target.lower()), None)
    return click(e) if e else _DONE


@planner("sign-agreement")
def _agreement(els, f, u, mem):
    def make():
        area, name = first(els, tag="TEXTAREA"), first(els, id="name")
        button = next((b for b in find(els, tag="BUTTON") if b["text"].strip().lower() == f["button"].lower()), None)
        plan = [{"action": "scroll", "coordinate": centre(area), "scroll_direction": "down", "scroll_amount": 20}]
        plan += _fill(name, f["name"]) if "name" in f and name else []
        return [*plan, click(button)] if area and button else []
    return run_plan(mem, make)


@planner("click-link")
def _link(els, f, u, mem):
    e = first(els, cls="alink", text=f["target"])
    return click(e) if e else _DONE


@planner("click-dialog")
def _dialog(els, f, u, mem):
    e = first(els, cls="ui-dialog-titlebar-close")
    return click(e) if e else _DONE


_WIDGETS = {"button": "BUTTON", "text": "INPUT_text", "textarea": "TEXTAREA", "checkbox": "INPUT_checkbox",
            "radio": "INPUT_radio"}


@planner("click-widget")
def _widget(els, f, u, mem):
    e = first(els, tag=_WIDGETS.get(f["target"], f["target"].upper()))
    return click(e) if e else _DONE


@planner("focus-text-2")
def _nth_text(els, f, u, mem):
    fields = find(els, tag="INPUT_text")
    i = int(f["target"]) - 1
    return click(fields[i]) if 0 <= i < len(fields) else _DONE


@planner("click-tab")
def _tab(els, f, u, mem):
    e = first(els, tag="A", text=f"Tab #{f['target']}")
    return click(e) if e else _DONE


def _label(els: Elements, text: str) -> dict[str, Any] | None:
    return next((e for e in find(els) if e["leaf"] and e["tag"] == "t" and e["text"].strip() == text), None)


@planner("click-option", "click-checkboxes", "click-checkboxes-large", "click-checkboxes-transfer")
def _boxes(els, f, u, mem):
    def make():
        targets = [v for k, v in f.items() if k.startswith("target")]
        return [click(lab) for lab in (_label(els, t) for t in targets) if lab] + [submit(els)]
    return run_plan(mem, make)


@planner("choose-list")
def _select(els, f, u, mem):
    def make():
        sel = first(els, tag="SELECT")
        return [click(sel), {"action": "type", "text": f["target"]}, {"action": "key", "text": "Return"},
                submit(els)] if sel else []
    return run_plan(mem, make)


@planner("click-scroll-list")
def _scroll_list(els, f, u, mem):
    sel = first(els, tag="SELECT")
    targets = [t.strip() for k, v in f.items() if k.startswith("target") for t in v.split(",")]
    todo = [t for t in targets if t not in mem.setdefault("picked", [])]
    if not sel:
        return _DONE
    if not todo:
        return submit(els)
    opt = next((e for e in els if e["tag"] == "OPTION" and e["text"].strip() == todo[0]), None)
    if opt is None:
        return _DONE
    top, bottom = sel["top"], sel["top"] + sel["height"]
    y = opt["top"] + opt["height"] / 2
    if y < top + 2 or y > bottom - 2:
        return {"action": "scroll", "coordinate": centre(sel), "scroll_direction": "down" if y > bottom else "up",
                "scroll_amount": 1}
    mem["picked"].append(todo[0])
    return click(opt, text="ctrl") if len(mem["picked"]) > 1 else click(opt)


@planner("use-autocomplete")
def _autocomplete(els, f, u, mem):
    box = first(els, tag="INPUT_text")
    stage = mem.get("stage", 0)
    mem["stage"] = stage + 1
    if stage == 0 and box:
        return click(box)
    if stage == 1:
        return {"action": "type", "text": f["start"]}
    if stage == 2:
        return {"action": "wait", "duration": 0.5}  # the suggestion menu opens after a delay
    items = [e for e in find(els, cls="ui-menu-item-wrapper")
             if e["text"].startswith(f["start"]) and e["text"].endswith(f.get("end", ""))]
    if stage == 3 and items:
        return click(items[0])
    return submit(els)


def _fill(box: dict[str, Any] | None, text: str) -> list[dict[str, Any]]:
    return [click(box), {"action": "type", "text": text}] if box else []


@planner("enter-text", "enter-text-dynamic")
def _enter_text(els, f, u, mem):
    return run_plan(mem, lambda: [*_fill(first(els, tag="INPUT_text"), f["target"]), submit(els)])


@planner("enter-text-2")
def _enter_text_2(els, f, u, mem):
    text = f["text"].upper() if f.get("case") == "upper" else f["text"].lower()
    return run_plan(mem, lambda: [*_fill(first(els, tag="INPUT_text"), text), submit(els)])


@planner("enter-password")
def _password(els, f, u, mem):
    return run_plan(mem, lambda: [*(a for b in find(els, tag="INPUT_password") for a in _fill(b, f["target"])),
                                  submit(els)])


@planner("login-user")
def _login(els, f, u, mem):
    return run_plan(mem, lambda: [*_fill(first(els, id="username"), f["username"]),
                                  *_fill(first(els, id="password"), f["password"]), submit(els)])


@planner("enter-date")
def _date(els, f, u, mem):
    def make():
        box = first(els, tag="INPUT_date")  # click the month segment, at the field's left edge
        return [click(box, coordinate=[int(box["left"] + 8), centre(box)[1]]),
                {"action": "type", "text": f["target"].replace("/", "")}, submit(els)] if box else []
    return run_plan(mem, make)


@planner("enter-time")
def _time(els, f, u, mem):
    def make():
        m = re.match(r"(\d+):(\d+)\s*([AP]M)", f["target"])
        if not m:
            return []
        box = first(els, tag="INPUT_time")
        return [click(box, coordinate=[int(box["left"] + 8), centre(box)[1]]),
                {"action": "type", "text": f"{int(m[1]):02d}{m[2]}{m[3][0]}"}, submit(els)] if box else []
    return run_plan(mem, make)


def _nearest_input(els: Elements, label: dict[str, Any]) -> dict[str, Any] | None:
    inputs = [e for e in find(els) if e["tag"].startswith("INPUT") or e["tag"] == "TEXTAREA"]
    cx, cy = centre(label)
    return min(inputs, key=lambda e: (centre(e)[0] - cx) ** 2 / 4 + (centre(e)[1] - cy) ** 2, default=None)


@planner("multi-orderings", "multi-layouts")
def _movie_form(els, f, u, mem):
    def make():
        plan = []
        for key, value in f.items():
            label = next((e for e in find(els) if e["text"].strip().lower() == key.lower()), None)
            plan += _fill(_nearest_input(els, label), value) if label else []
        final = first(els, cls="final") or first(els, cls="ui-submit") or next(
            (e for e in find(els) if e["text"].strip() in ("Submit", "Search")), None)
        return plan + ([click(final)] if final else [])
    return run_plan(mem, make)


@planner("scroll-text")
def _scroll_text(els, f, u, mem):
    def make():
        area = first(els, tag="TEXTAREA")
        words = re.findall(r"[\w']+", area["text"]) if area else []
        return [*_fill(first(els, id="answer-input"), words[-1] if words else ""), submit(els)]
    return run_plan(mem, make)


@planner("drag-box")
def _drag_box(els, f, u, mem):
    def make():
        small, large = first(els, id="draggableSmall"), first(els, id="draggableLarge")
        if not (small and large):
            return []
        return [{"action": "left_click_drag", "start_coordinate": centre(small), "coordinate": centre(large)},
                submit(els)]
    return run_plan(mem, make)


@planner("drag-items")
def _drag_items(els, f, u, mem):
    def make():
        m = re.match(r"(.+?) to the (top|bottom|\d+)", f["target"])
        items = [e for e in els if e["tag"] == "LI"]
        if not m:
            return []
        src = next((li for li in items if any(e["tag"] == "DIV" and e["text"].strip() == m[1] and
                                              li["top"] <= e["top"] < li["top"] + li["height"] for e in els)), None)
        if not (m and src):
            return []
        dest = items[0] if m[2] == "top" else items[-1] if m[2] == "bottom" else items[int(m[2]) - 1]
        x, y = centre(dest)
        y += int(dest["height"] * (0.6 if dest["top"] > src["top"] else -0.6))  # past the target's midline
        return [{"action": "left_click_drag", "start_coordinate": centre(src), "coordinate": [x, max(0, min(209, y))]},
                submit(els)]
    return run_plan(mem, make)


@planner("drag-single-shape")
def _drag_shape(els, f, u, mem):
    def make():
        shape = first(els, tag="rect") or next((e for e in find(els) if e["tag"] in ("circle", "polygon")), None)
        if not shape:
            return []
        dx, dy = {"up": (0, -30), "down": (0, 30), "left": (-30, 0), "right": (30, 0)}[f["target"]]
        x, y = centre(shape)
        return [{"action": "left_click_drag", "start_coordinate": [x, y],
                 "coordinate": [max(1, min(158, x + dx)), max(51, min(208, y + dy))]}, submit(els)]
    return run_plan(mem, make)


@planner("scroll-text-2")
def _scroll_text_2(els, f, u, mem):
    def make():
        area = first(els, tag="TEXTAREA")
        return [{"action": "scroll", "coordinate": centre(area), "scroll_direction":
                 "up" if f["target"] == "top" else "down", "scroll_amount": 10}, submit(els)] if area else []
    return run_plan(mem, make)


@planner("click-button-sequence")
def _sequence(els, f, u, mem):
    return run_plan(mem, lambda: [click(b) for b in (first(els, text="ONE"), first(els, text="TWO")) if b])


@planner("click-collapsible")
def _collapsible(els, f, u, mem):
    header = first(els, tag="H3")
    if header and not mem.get("opened"):
        mem["opened"] = True
        return click(header)
    if not mem.get("settled"):
        mem["settled"] = True
        return {"action": "wait", "duration": 0.4}  # the section slides open
    b = first(els, text="Submit")
    return click(b) if b else _DONE


def _reveal(els: Elements, mem: dict[str, Any], target: str, openers: list[dict[str, Any]]) -> dict[str, Any]:
    """Click the target link if it is on screen, else open the next section/tab/folder not yet opened."""
    if mem.pop("settle", False):
        return {"action": "wait", "duration": 0.4}  # let the section or tab finish opening
    link = next((e for e in find(els) if e["text"].strip() == target and e["tag"] in ("SPAN", "A")), None)
    if link:
        return click(link)
    tried = mem.setdefault("opened", [])
    for i, o in enumerate(openers):
        key = (o["tag"], o["text"], round(o["top"]) if o["tag"] == "DIV" else i)
        if key not in tried:
            tried.append(key)
            mem["settle"] = True
            return click(o)
    return _DONE


@planner("click-collapsible-2")
def _collapsible_2(els, f, u, mem):
    return _reveal(els, mem, f["target"], [e for e in find(els, tag="H3")])


@planner("click-tab-2")
def _tab_2(els, f, u, mem):
    return _reveal(els, mem, f["target"], [e for e in find(els, tag="A") if e["text"].startswith("Tab #")])


@planner("navigate-tree")
def _tree(els, f, u, mem):
    target = next((e for e in find(els, tag="SPAN") if e["text"].strip() == f["target"]), None)
    if target:
        return click(target)
    return _reveal(els, mem, f["target"], find(els, cls="expandable-hitarea"))


@planner("email-inbox-delete")
def _email_delete(els, f, u, mem):
    sender = first(els, cls="email-sender", text=f["by"])
    if not sender:
        return _DONE
    trash = [e for e in find(els, cls="trash") if abs(e["top"] - sender["top"]) < 12]
    return click(trash[0]) if trash else _DONE


_SOCIAL = ("like", "reply", "retweet")


@planner("social-media")
def _social(els, f, u, mem):
    user = next((e for e in els if "username" in e["classes"].split() and e["text"] == f["user"]), None)
    if not user:
        return _DONE
    if user["top"] > 150:  # the post is below the fold: scroll the page
        return {"action": "scroll", "coordinate": [80, 130], "scroll_direction": "down", "scroll_amount": 2}
    media = [e for e in find(els, cls="media") if e["top"] <= user["top"] < e["top"] + e["height"]]
    if not media:
        return _DONE
    box = media[0]
    inside = [e for e in find(els) if box["top"] <= e["top"] < box["top"] + box["height"]]
    button = f["button"].lower()
    if button in _SOCIAL:
        e = next((e for e in inside if button in e["classes"].split()), None)
        return click(e) if e else _DONE
    item = next((e for e in els if e["tag"] == "LI" and _visible(e) and e["text"].lower().startswith(button)
                 and box["top"] <= e["top"] < box["top"] + box["height"] + 120), None)
    if item:
        return click(item)
    more = next((e for e in inside if "more" in e["classes"].split()), None)
    if more and not mem.get("more"):
        mem["more"] = True
        return click(more)
    return _DONE


@planner("terminal-write-file")
def _terminal(els, f, u, mem):
    return run_plan(mem, lambda: [{"action": "left_click", "coordinate": [300, 200]},
                                  {"action": "type", "text": f"echo {f['text']} > {f['file']}"},
                                  {"action": "key", "text": "Return"}])


@planner("editor-save-file")
def _nano(els, f, u, mem):
    return run_plan(mem, lambda: [{"action": "left_click", "coordinate": [300, 200]},
                                  {"action": "type", "text": f["text"]}, {"action": "key", "text": "ctrl+o"},
                                  {"action": "type", "text": f["file"]}, {"action": "key", "text": "Return"}])


class OracleAgent:
    """Plays the planner of the current task; an unknown task gets `wait` (and fails, visibly)."""

    name = "oracle"
    uses_screenshot = False  # it reads the DOM

    def __init__(self) -> None:
        self.mem: dict[str, Any] = {}
        self.task = ""

    def reset(self, obs: dict[str, Any]) -> None:
        self.mem, self.task = {}, obs["task"]

    def act(self, obs: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
        plan = PLANNERS.get(self.task)
        if plan is None:
            return _DONE
        _screen["height"] = obs["size"][1]
        return plan(obs["elements"], obs["fields"], obs["utterance"], self.mem)

    def close(self) -> None:
        pass
