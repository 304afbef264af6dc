"""Every console page in a real browser: loads clean, does what it says, screenshot taken.

Order matters only at the end: the forget test removes a photo the others search for.
"""

from __future__ import annotations

import re
import shutil
import threading
from typing import Any

from facesearch.local import EmbeddedSystem
from facesearch.storage.metadata import ImageStatus
from tests.browser.conftest import PHOTO_SET, PROBE, Console, shot, wait_until


def _results(page: Any) -> list[str]:
    return page.eval_on_selector_all("#results li", "els => els.map(e => e.dataset.image)")


def _clean(page: Any, console: Console) -> None:
    assert page.watch.clean() == []
    assert page.watch.foreign(console.url) == []


def _store(console: Console, collection: str = "default") -> Any:
    return console.app.query.service.collection(collection).store


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
    assert page.locator(".stage svg rect.box").count() >= 1
    assert page.get_attribute(".face-picks button", "aria-pressed") == "true"
    shot(page, "search")
    # the slider filters in place: at 0 every candidate shows (other people too)
    page.fill("#threshold", "0")
    page.dispatch_event("#threshold", "input")
    assert len(_results(page)) > len(found)
    # a result links to its source image
    page.click(f'#results li[data-image="{console.images["obama-1"]}"] a')
    page.wait_for_selector(".stage svg rect.box")
    assert console.images["obama-1"] in page.url
    _clean(page, console)


def test_picking_another_face_of_a_group_photo_shows_its_matches(
    page: Any, console: Console
) -> None:
    page.set_input_files("#probe", str(PHOTO_SET["group-t1"]))
    page.wait_for_selector(".face-picks button >> nth=1")
    buttons = page.locator(".face-picks button")
    assert buttons.count() >= 2
    assert page.locator(".stage svg rect.box").count() == buttons.count()
    first = page.inner_text("#result-summary")
    buttons.nth(1).click()
    # the page redraws after the click: wait for it (a loaded machine is slow to repaint)
    wait_until(page, "document.querySelectorAll('.stage svg rect.box.selected').length === 1")
    assert buttons.nth(1).get_attribute("aria-pressed") == "true"
    # each face of the group photo is in the collection: its best match is itself
    page.wait_for_selector("#results li")
    assert console.images["group-t1"] in _results(page)
    assert page.inner_text("#result-summary") and first
    _clean(page, console)


def test_image_view_draws_boxes_landmarks_scores_and_reasons(page: Any, console: Console) -> None:
    image_id = console.images["group-t1"]
    page.goto(f"{console.url}/console/#/c/default/images/{image_id}")
    page.wait_for_selector("tbody tr")
    faces = _store(console).list_faces(image_id=image_id, limit=100).items
    assert page.locator("tbody tr").count() == len(faces)
    assert page.locator(".stage svg rect.box").count() == len(faces)
    assert page.locator(".stage svg circle.mark").count() == 5 * len(faces)
    wait_until(page, "document.querySelector('.stage img').naturalWidth > 0")
    text = page.inner_text("tbody")
    assert re.search(r"0\.9\d\d", text)  # detection scores
    shot(page, "image")
    _clean(page, console)


def test_every_page_loads_without_errors_and_is_keyboard_usable(
    page: Any, console: Console
) -> None:
    persons = console.app.query.service.collection("default").persons
    person = persons.create_person("Screenshot Person", {})
    face = _store(console).list_faces(image_id=console.images["hanks-1"], limit=1).items[0]
    persons.set_face_person(face.face_id, person.person_id)
    pages = {
        "collections": "#/collections",
        "status": "#/c/default/status",
        "people": "#/c/default/people",
        "person": f"#/c/default/people/{person.person_id}",
    }
    for name, fragment in pages.items():
        # a hash-only goto is a same-document navigation: it returns at once, while the
        # previous page's heading is still shown; wait for the new page's own heading
        page.evaluate("document.querySelector('main h1')?.setAttribute('data-old', '1')")
        page.goto(f"{console.url}/console/{fragment}")
        wait_until(
            page,
            "(() => { const h = document.querySelectorAll('main h1');"
            " return h.length === 1 && !h[0].dataset.old; })()",
        )
        page.wait_for_load_state("networkidle")
        assert page.locator("main h1").count() == 1, name
        assert "Could not load" not in page.inner_text("main"), name
        shot(page, name)
    # keyboard: on a fresh load tab reaches the skip link first, then the navigation
    page.reload()
    page.wait_for_selector("main h1")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "brand"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('nav') !== null")
    page.keyboard.press("Enter")  # the first section link, by keyboard
    page.wait_for_url(re.compile(r"#/c/default/search$"))
    # every form control has a label
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select')].filter(
            e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id)"""
    )
    assert unlabelled == []
    _clean(page, console)


def test_status_lists_failures_and_updates_live_as_photos_arrive(
    page: Any, console: Console
) -> None:
    page.goto(f"{console.url}/console/#/c/default/status")
    page.wait_for_selector(f'#failures tr[data-image="{console.images["broken"]}"]')
    assert "invalid-image" in page.inner_text("#failures") or "decode" in page.inner_text(
        "#failures"
    )
    images_tile = page.locator('[data-stat="Images"] b')
    before = int(images_tile.inner_text())
    assert page.locator("#segments tr").count() >= 1
    # a new photo ingested behind the page's back shows up without a reload
    extra = console.photos_dir / "late-arrival.jpg"
    shutil.copyfile(PHOTO_SET["biden-1"].parent.parent / "obama" / "obama_3.jpg", extra)
    worker = threading.Thread(target=lambda: EmbeddedSystem(console.settings).ingest_file(extra))
    worker.start()
    worker.join(timeout=120)
    wait_until(
        page,
        f"Number(document.querySelector('[data-stat=\"Images\"] b').textContent) > {before}",
        timeout_s=15,
    )
    # retry keeps a broken file failed; forget removes it from the list
    row = page.locator(f'#failures tr[data-image="{console.images["broken"]}"]')
    row.get_by_role("button", name="Retry").click()
    page.wait_for_selector("#flash:has-text('Retried')")
    record = _store(console).get_image(console.images["broken"])
    assert record is not None and record.status == ImageStatus.FAILED
    page.locator(f'#failures tr[data-image="{console.images["broken"]}"]').get_by_role(
        "button", name="Forget"
    ).click()
    page.wait_for_selector(
        f'#failures tr[data-image="{console.images["broken"]}"]', state="detached"
    )
    assert _store(console).get_image(console.images["broken"]) is None
    _clean(page, console)


def test_collections_create_and_erase_with_typed_confirmation(page: Any, console: Console) -> None:
    page.goto(f"{console.url}/console/#/collections")
    page.fill("#new-id", "party-2026")
    page.fill("#new-name", "Summer party")
    page.click("#create-collection button[type=submit]")
    page.wait_for_selector('[data-collection="party-2026"]')
    page.click('[data-collection="party-2026"] h2 a')
    page.wait_for_selector("#erase-form")
    assert page.is_disabled("#erase-button")
    page.fill("#erase-confirm", "party-202")  # almost
    assert page.is_disabled("#erase-button")
    page.fill("#erase-confirm", "party-2026")
    assert page.is_enabled("#erase-button")
    page.click("#erase-button")
    page.wait_for_url(re.compile(r"#/collections$"))
    record = console.app.query.collections.get("party-2026")  # type: ignore[union-attr]
    assert str(record.status) in ("erasing", "erased")
    _clean(page, console)


def _person_names(console: Console) -> dict[str, int]:
    persons = console.app.query.service.collection("default").persons
    return {p.name: p.faces for p in persons.list_persons(cursor=None, limit=1000).items if p.name}


def test_people_merge_split_undo_round_trip(page: Any, console: Console) -> None:
    store = _store(console)
    face_1 = store.list_faces(image_id=console.images["obama-1"], limit=1).items[0].face_id
    face_2 = store.list_faces(image_id=console.images["obama-2"], limit=1).items[0].face_id
    page.goto(f"{console.url}/console/#/c/default/people")
    for face, name in ((face_1, "Barack"), (face_2, "President")):
        page.check(f'#unlabelled input[data-face="{face}"]')
        page.fill("#new-person", name)
        page.click("#create-person")
        page.wait_for_selector(f'#people li[data-name="{name}"]')
    assert _person_names(console)["Barack"] == 1
    # merge the two
    for name in ("Barack", "President"):
        page.check(f'#people li[data-name="{name}"] input[type=checkbox]')
    page.click("#merge")
    page.wait_for_selector('#people li[data-name="President"]', state="detached")
    names = _person_names(console)
    assert names["Barack"] == 2 and "President" not in names
    shot(page, "people-merged")
    # split one face off on the person's page
    page.click('#people li[data-name="Barack"] a')
    page.wait_for_selector("#person-faces li >> nth=1")
    page.check(f'#person-faces input[data-face="{face_2}"]')
    page.click("#split")
    page.wait_for_selector("#person-faces li >> nth=1", state="detached")
    names = _person_names(console)
    assert names["Barack"] == 1 and names["Barack (split)"] == 1
    # undo the split: one person with both faces again; undo the merge: two persons again
    page.click("#undo")
    page.wait_for_selector("#person-faces li >> nth=1")
    names = _person_names(console)
    assert names["Barack"] == 2 and "Barack (split)" not in names
    page.click("#undo")
    page.wait_for_selector("#flash:has-text('Undone: merge')")
    names = _person_names(console)
    assert names["Barack"] == 1 and names["President"] == 1
    _clean(page, console)


def test_forgetting_an_image_from_its_view_removes_it_from_search(
    page: Any, console: Console
) -> None:
    forgotten = console.images["obama-2"]
    page.goto(f"{console.url}/console/#/c/default/images/{forgotten}")
    page.wait_for_selector("#forget-image")
    page.click("#forget-image")
    page.click("#forget-confirm")
    page.wait_for_url(re.compile(r"#/c/default/search$"))
    page.wait_for_selector("#flash:has-text('Image forgotten')")
    assert _store(console).get_image(forgotten) is None
    page.set_input_files("#probe", str(PROBE))
    page.wait_for_selector("#results li")
    found = _results(page)
    assert console.images["obama-1"] in found and forgotten not in found
    _clean(page, console)
