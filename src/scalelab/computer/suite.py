"""The task suite: MiniWoB++ tasks by family, the desktop's own tasks, and the seeds of each split.

Families follow what a task asks of the hands: *click* one element, *check* boxes or radios, *select* from a
list, *type* text into fields, *drag*, *scroll*, and *multi-step* (the page changes between actions).
Instances are seeded; train seeds and held-out seeds never overlap, so a policy trained on train-seed
demonstrations is measured on pages it has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalelab.errors import InputError

FAMILIES = ("click", "check", "select", "type", "drag", "scroll", "multi-step")
HELDOUT_SEED_BASE = 1_000_000  # held-out instance i uses seed HELDOUT_SEED_BASE + i; train instance i uses i
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class Task:
    name: str
    family: str
    backend: str = "miniwob"  # "miniwob" (a MiniWoB++ page) or "desktop" (an X application task)


_MINIWOB: dict[str, tuple[str, ...]] = {
    "click": ("click-test", "click-test-2", "click-button", "click-link", "click-dialog", "click-dialog-2",
              "click-widget", "focus-text", "focus-text-2", "click-tab", "unicode-test", "sign-agreement"),
    "check": ("click-option", "click-checkboxes", "click-checkboxes-large", "click-checkboxes-transfer"),
    "select": ("choose-list", "use-autocomplete"),
    "type": ("enter-text", "enter-text-2", "enter-text-dynamic", "enter-password", "login-user", "enter-date",
             "enter-time", "multi-orderings"),
    "drag": ("drag-box", "drag-items", "drag-single-shape"),
    "scroll": ("scroll-text", "scroll-text-2", "click-scroll-list"),
    "multi-step": ("click-button-sequence", "click-collapsible", "click-collapsible-2", "click-tab-2",
                   "navigate-tree", "email-inbox-delete", "social-media"),
}
# Tasks the oracle could not solve reliably, with the reason; they stay out of the suite (see DROPPED).
DROPPED: dict[str, str] = {
    "click-scroll-list": "after the list box scrolls, the option rectangles the page reports no longer match where "
                         "the options are drawn; the oracle clicked the wrong option in 7 of 10 held-out instances",
    "sign-agreement": "two of six instances failed: some variants need the agreement scrolled in a way the oracle's "
                      "single wheel scroll does not trigger",
    "social-media": "half the instances failed: the post's menu opens below the fold and the oracle's scroll and "
                    "menu clicks miss it",
    "drag-items": "a third of instances failed: jQuery UI's sortable does not always take a synthetic drag to the "
                  "target position",
    "multi-layouts": "its labels sit above, below or beside their fields by layout; the oracle's nearest-field "
                     "rule picked the wrong field in 2 of 4 instances",
}

SUITE: tuple[Task, ...] = tuple(Task(name, family) for family, names in _MINIWOB.items() for name in names
                                if name not in DROPPED)
DESKTOP_TASKS: tuple[Task, ...] = (Task("terminal-write-file", "type", "desktop"),
                                   Task("editor-save-file", "multi-step", "desktop"))
# A few tasks, one per family where it is cheap, for smoke runs and tests.
SMOKE: tuple[str, ...] = ("click-test", "click-option", "enter-text", "drag-box", "click-collapsible")
DESKTOP_SMOKE: tuple[str, ...] = ("click-test", "enter-text", "terminal-write-file", "editor-save-file")

_BY_NAME = {t.name: t for t in (*SUITE, *DESKTOP_TASKS)}


def seed_for(split: str, episode: int) -> int:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return episode if split == "train" else HELDOUT_SEED_BASE + episode


def resolve(spec: str, backend: str = "miniwob") -> list[Task]:
    """`suite`, `smoke`, `desktop` or a comma-separated list of task names -> tasks."""
    if spec == "suite":
        return list(SUITE)
    if spec == "smoke":
        names = DESKTOP_SMOKE if backend == "desktop" else SMOKE
        return [_BY_NAME[n] for n in names]
    if spec == "desktop":
        return [*DESKTOP_TASKS, *(t for t in SUITE if t.name in SMOKE)]
    tasks = []
    for name in (n.strip() for n in spec.split(",") if n.strip()):
        if name not in _BY_NAME:
            hint = f" (dropped: {DROPPED[name]})" if name in DROPPED else ""
            raise InputError(f"unknown task {name!r}{hint}; `scalelab computer tasks` lists the suite, or use "
                             "--tasks suite / smoke / desktop")
        tasks.append(_BY_NAME[name])
    if not tasks:
        raise InputError("--tasks is empty; use suite, smoke, desktop or task names separated by commas")
    return tasks


def task(name: str) -> Task:
    return resolve(name)[0]
