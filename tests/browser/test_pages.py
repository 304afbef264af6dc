"""Every console page in a real browser: loads clean, does what it says, screenshot taken."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import PROBE, Console, shot


def _results(page: Any) -> list[str]:
    return page.eval_on_selector_all("#results li", "els => els.map(e => e.dataset.image)")


def test_search_by_uploading_a_real_photo_finds_the_same_persons_other_photos(
    page: Any, console: Console
) -> None:
    page.set_input_files("#probe", str(PROBE))
    page.wait_for_selector("#results li")
    found = _results(page)
    threshold = float(page.input_value("#threshold"))
    assert console.images["obama-1"] in found and console.images["obama-2"] in found
    assert console.images["biden-1"] not in found  # above the default threshold: only Obama
    assert 0.0 < threshold < 1.0
    boxes = page.locator(".stage svg rect.box").count()
    assert boxes >= 1
    assert page.get_attribute(".face-picks button", "aria-pressed") == "true"
    shot(page, "search")
    # the slider filters in place: at 0 every candidate shows (other people too)
    page.fill("#threshold", "0")
    page.dispatch_event("#threshold", "input")
    assert len(_results(page)) > len(found)
    assert page.watch.clean() == []
