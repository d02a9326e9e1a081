"""The live explorer in JupyterLab, driven like a user: type a prompt no notebook uses, pick a token, move the
position to a fractional value, change a threshold; the page must show exactly what the generators, run in
this test process on the same inputs, return. Then an empty prompt shows its error, and a valid one works
again.

Numbers are read from the hidden ``tempo-view-state`` element each panel keeps (and the sentence is checked
to quote them), never parsed from prose.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import lab_page as lp
import pytest

from tests.helpers import HANG_S

pytestmark = pytest.mark.browser

NOTEBOOK = "explore.ipynb"
PROMPT = "The lighthouse keeper polished the lens and"  # no notebook uses it
TOKEN = " the"


@pytest.fixture(scope="module")
def bundled_generators():
    from tempo_lab import load_model
    from tempo_lab.generators import CompressedThoughtGenerator, RetroactivePositionGenerator

    lm = load_model()
    return lm, RetroactivePositionGenerator(lm), CompressedThoughtGenerator(lm)


def panel(page, title: str):
    """Select the dashboard tab ``title``; return its panel (the visible ``.tempo-view`` box)."""
    page.locator(".lm-TabBar-tab", has_text=title).first.click()
    box = page.locator(".tempo-view:visible").first
    box.wait_for(timeout=HANG_S * 1000)
    return box


def state(box) -> dict[str, Any]:
    return json.loads(html.unescape(box.locator(".tempo-view-state").first.text_content() or "{}") or "{}")


def settle(box, want: dict[str, Any], what: str) -> dict[str, Any]:
    """Wait until the panel's state was computed for control values that include ``want``."""

    def ready():
        s = state(box)
        values = s.get("values", {})
        ok = all(
            abs(values.get(k, float("nan")) - v) < 1e-9 if isinstance(v, float) else values.get(k) == v
            for k, v in want.items()
        )
        return s if ok else None

    return lp.wait_until(ready, HANG_S, what)


def type_into(box, index: int, text: str) -> None:
    """Replace the text of the panel's ``index``-th text box and submit it (Enter)."""
    field = box.locator(".widget-text input").nth(index)
    field.fill(text)
    field.press("Enter")


def press(box, slider_index: int, key: str, times: int) -> None:
    handle = box.locator(".widget-slider .noUi-handle").nth(slider_index)
    handle.focus()
    for _ in range(times):
        handle.press(key)


def test_live_explorer_shows_what_the_generators_return(
    browser_context, lab_server, screenshot_dir: Path, bundled_generators
) -> None:
    lm, retro, compressed = bundled_generators
    with lp.notebook_page(browser_context, lab_server, screenshot_dir / "FAILED_live_explorer.png") as page:
        lp.open_notebook(page, lab_server, NOTEBOOK)
        run = lp.run_all_cells(page, NOTEBOOK)
        assert not run["pending"] and not lp.problems(page)["errors"], run

        # every tab's title is shown whole
        labels = page.locator(".lm-TabBar-tabLabel")
        assert labels.count() >= 5
        for i in range(labels.count()):
            cut = labels.nth(i).evaluate("e => e.scrollWidth > e.clientWidth")
            assert not cut, f"the tab title {labels.nth(i).inner_text()!r} is cut"

        # retroactive: a new prompt, a token, the token moved to a fractional gap
        box = panel(page, "Retroactive")
        type_into(box, 0, PROMPT)
        type_into(box, 1, TOKEN)
        first = settle(box, {"prompt": PROMPT, "token": TOKEN}, "the position panel to take the new prompt")
        press(box, 0, "ArrowRight", 3)  # gap 0.5 -> 0.8, one update per key press: the latest wins
        shown = settle(
            box, {"gap": round(first["values"]["gap"] + 0.3, 10)}, "the position panel after the move"
        )
        t = lm.encode(PROMPT).shape[1]
        gap = shown["values"]["gap"]
        assert gap != int(gap) and shown["position"] == pytest.approx(t + gap)
        expected = retro.explore(PROMPT, positions=[t + gap], token=TOKEN, top_k=5)
        assert [x[0] for x in shown["top"]] == [x[0] for x in expected.top[0]]
        assert [x[1] for x in shown["top"]] == pytest.approx([x[1] for x in expected.top[0]], abs=1e-5)
        sentence = box.locator(".tempo-view-text").first.inner_text()
        top, tv = shown["top"][0], shown["tv_from_gap0"]
        quoted = (f"top {top[0]!r} {top[1]:.4f}", f"TV from gap 0 {tv:.4f}")
        for part in quoted:
            assert part in sentence, f"the sentence does not quote {part!r}: {sentence!r}"
        assert shown["tv_from_gap0"] == pytest.approx(float(expected.tv[0]), abs=1e-5)
        assert shown["prefills"] == first["prefills"]  # moving the token did not prefill again
        lp.show_view(page, box.locator(".widget-text").first)
        page.screenshot(path=str(screenshot_dir / "live_explorer.png"))

        # compressed thoughts: the same prompt, the threshold raised by the keyboard
        box = panel(page, "Compressed")
        type_into(box, 0, PROMPT)
        before = settle(box, {"prompt": PROMPT}, "the compressed panel to take the new prompt")
        press(box, 1, "ArrowRight", 2)  # threshold 0.05 -> 0.07
        after = settle(
            box,
            {"threshold": round(before["values"]["threshold"] + 0.02, 10)},
            "the compressed panel after the move",
        )
        v = after["values"]
        res = compressed.generate(
            PROMPT, gap=v["gap"], threshold=v["threshold"], path_length=v["path_length"], progress=False
        )
        assert [c[0] for c in after["candidates"]] == [c.token for c in res.candidates]
        assert [c[1] for c in after["candidates"]] == pytest.approx(
            [c.prob for c in res.candidates], abs=1e-5
        )
        assert after["paths"] == [p.text for p in res.paths]

        # bad input, then good input again
        box = panel(page, "Retroactive")
        type_into(box, 0, "")
        error = lp.wait_until(lambda: state(box).get("error"), HANG_S, "the empty prompt's error")
        assert "the prompt is empty" in error
        assert "the prompt is empty" in box.locator(".tempo-view-text").first.inner_text()
        type_into(box, 0, PROMPT)
        again = settle(box, {"prompt": PROMPT}, "results after a valid prompt")
        assert "error" not in again and [x[0] for x in again["top"]] == [x[0] for x in expected.top[0]]
