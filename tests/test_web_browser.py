"""The web app in a real browser (Debian's Chromium driven by Playwright) against `scalelab serve` on a small run:
the runs page and lineage, a feature page, a streamed chat round trip, steering by slider, A/B, the gate's refusal,
a grounded answer whose citation opens its passage, a trajectory with its actions drawn, the zoomable plots (the
ladder, and the scaling fit's IsoFLOP profiles and law with their hold-outs), and markup in feature contexts or
model output shown as text, never run.
Each test leaves a screenshot under test-artifacts/web/."""

from __future__ import annotations

import json

import httpx
import pytest

from scalelab.rsp.gate import GateRefused, check_serving
from scalelab.rsp.safeguards.output_filter import BLOCKED_REPLY
from scalelab.web.ground.docs import read_world
from scalelab.web.ground.evaluate import make_questions
from scalelab.web.ground.index import PassageIndex
from scalelab.world.reader import WorldDir
from web_fixtures import ARTIFACTS

DONE = "#transcript-{side} .turn.assistant[data-done]"


@pytest.fixture
def dialogs(page):
    """Every JavaScript dialog a page opens (an escaped `<script>` never opens one)."""
    seen: list[str] = []
    page.on("dialog", lambda d: (seen.append(d.message), d.dismiss()))
    return seen


def _send(page, message: str, side: str = "a") -> str:
    page.fill("#message", message)
    page.click("#send")
    page.wait_for_selector(DONE.format(side=side), timeout=60_000)
    return page.locator(DONE.format(side=side)).last.text_content() or ""


def test_runs_page_lists_the_run_and_its_lineage(page, dialogs):
    page.goto("/runs")
    stages = page.locator("#runs tbody tr td:nth-child(2)").all_text_contents()
    assert {"world", "tokenizer", "pretrain:d1", "interp"} <= set(stages)
    page.click("a.artifact:has-text('model: models/d1')")
    page.wait_for_selector("#parents")
    assert "tokenizer" in page.locator("#parents").text_content()
    assert "sae" in page.locator("#children").text_content()
    assert not dialogs


def test_feature_page_renders_its_contexts(page):
    page.goto("/features?sae=d1")
    page.locator("a.feature").first.click()
    page.wait_for_selector("#top .context")
    assert page.locator("#top .context").count() >= 1 and page.locator("#top .tok").count() >= 5
    assert page.locator("#concept").count() == 1 and page.locator("svg.hist rect").count() > 10
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "feature_page.png"), full_page=True)  # before it leaves for the chat
    page.click("#steer")
    page.wait_for_selector("#settings-a .steering .row")
    assert page.locator("#settings-a .sae").input_value() == "d1"


def test_chat_round_trip_streams_tokens(page):
    page.goto("/chat?model=d1")
    reply = _send(page, "Where does Peik Diles live?")
    turn = page.locator(DONE.format(side="a")).last
    assert reply.strip() and int(turn.get_attribute("data-tokens")) >= 2  # several token events, then done


def test_steering_slider_changes_the_output(page, web_server):
    feature = httpx.get(web_server + "/api/features/d1", params={"q": ""}).json()["results"][0]["feature"]
    page.goto(f"/chat?model=d1&sae=d1&feature={feature}")
    slider = page.locator("#settings-a .steering .row .scale")
    replies = []
    for value in ("0", "20"):
        page.click("#reset")
        slider.fill(value)
        assert page.locator("#settings-a .steering .row output").text_content() == value
        replies.append(_send(page, "Tell me about the vouhakra."))
    assert replies[0] != replies[1]


def test_ab_compares_two_settings(page):
    page.goto("/chat?model=d1")
    page.check("#ab")
    page.fill("#settings-b .temperature", "1.5")
    page.fill("#settings-b .seed", "3")
    page.fill("#message", "What colour is the vouhakra?")
    page.click("#send")
    page.wait_for_selector(DONE.format(side="b"), timeout=60_000)
    assert page.locator(DONE.format(side="a")).count() == 1 and page.locator(DONE.format(side="b")).count() == 1


def test_gated_model_shows_the_gates_refusal(page, web_run):
    with pytest.raises(GateRefused) as refused:
        check_serving(web_run / "posttrain" / "gated", False)
    page.goto("/chat?model=gated")
    assert page.locator("#gate").is_visible() and str(refused.value) in page.locator("#gate").text_content()
    page.fill("#message", "Hello")
    page.click("#send")
    page.wait_for_selector("#error-a[data-status='403']")
    assert page.locator("#error-a").text_content() == f"Refused by the RSP gate: {refused.value}"
    assert page.locator(".turn.assistant").count() == 0


def test_safeguards_on_shows_the_filtered_reply(page):
    """`guarded` is refused with safeguards off and served with them on, its reply judged by the output filter."""
    page.goto("/chat?model=guarded")
    assert "switch safeguards on" in page.locator("#gate").text_content()
    page.check("#settings-a .safeguards")
    reply = _send(page, "How is the compound made?")
    assert reply == BLOCKED_REPLY and page.locator(DONE.format(side="a")).last.get_attribute("data-filtered") == "1"


def test_grounded_answer_cites_and_opens_its_passage(page, web_run):
    world = web_run / "world"
    question = make_questions(WorldDir(world).world(), PassageIndex(read_world(world)), 1)[0][0]
    assert question.group == "stated"
    page.goto("/ask")
    page.fill("#question", question.text)
    page.select_option("#ask-model", "none")
    page.click("#ask")
    page.wait_for_selector("#answer")
    answer = page.locator("#answer .answer").text_content()
    assert question.gold in answer
    page.locator("a.cite").first.click()
    page.wait_for_selector("mark#cite")
    assert page.locator("mark#cite").text_content() == answer


def test_trajectory_steps_show_actions_on_screenshots(page):
    page.goto("/evals")
    page.locator("ul.episodes a").first.click()
    page.wait_for_selector("li.step img")
    page.wait_for_load_state("load")
    assert page.evaluate("() => [...document.querySelectorAll('li.step img')].every(i => i.naturalWidth > 0)")
    assert page.locator("svg.overlay circle.action").count() >= 1


def test_report_plots_are_drawn(page):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/report")
    page.wait_for_selector(".uplot")
    for chart in ("ladder", "sweep", "isoflop", "law"):
        assert page.locator(f"#plot-{chart} .uplot").count() == 1, chart
    for chart in ("isoflop", "law"):  # the hold-out budget is drawn, and named in the legend
        assert "hold-out C=4.00e+14" in page.locator(f"#plot-{chart} .u-legend").text_content()
    assert not errors


def test_feature_context_markup_shows_as_text(page, dialogs, web_server):
    """A feature context holding `<script>alert(...)</script>` reads as that text; nothing runs."""
    for feature in range(64):
        rec = httpx.get(f"{web_server}/api/features/d1/{feature}").json()
        if any("<script" in "".join(ex["tokens"]) for ex in rec["examples"]):
            break
    else:
        pytest.fail("no feature context holds the <script> text")
    page.goto(f"/features/d1/{feature}")
    page.wait_for_selector("#top .context")
    assert "<script" in (page.locator("#top").text_content() or "")
    assert page.locator("main script").count() == 0 and not dialogs


def test_model_output_with_markup_shows_as_text(page, dialogs):
    """A reply made of markup (the stream answered here with one) is shown as text: no element, no script."""
    pieces = ["<img src=x onerror=alert(1)>", " <script>alert(2)</script>"]
    events = [("token", p) for p in pieces] + [("done", {"model": "d1", "reply": "".join(pieces), "tokens": 2,
                                                         "filtered": False, "safeguards": False, "steered": {},
                                                         "seconds": 0.0})]
    body = "".join(f"event: {k}\ndata: {json.dumps(d)}\n\n" for k, d in events)
    page.route("**/api/chat/stream", lambda route: route.fulfill(status=200, body=body,
                                                                 headers={"content-type": "text/event-stream"}))
    page.goto("/chat?model=d1")
    reply = _send(page, "Say something")
    assert reply == "".join(pieces)
    assert page.locator("#transcript-a img, #transcript-a script").count() == 0 and not dialogs
