"""The profile page in a real headless Chromium (Debian's, driven by Playwright), against a
real ``attune serve``: what it shows matches the API, and every control's effect shows
through the API. Screenshots in en and ja land in the test's output folder."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from api.links import LinkSigner
from bandit import Catalog
from tests.attune_serve import HEADERS, ServeProcess

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CATALOG = Catalog.default()
# Set ATTUNE_DOCS_SCREENSHOT=1 to refresh the README's picture of the page from this run.
DOCS = Path(__file__).resolve().parents[2] / "docs" / "profile-page.png"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    data = tmp_path / "data"
    proc = ServeProcess(data, env={"ATTUNE_WAIT_WINDOW_S": "3600"}).start()
    try:
        yield proc.url, data
    finally:
        proc.stop(60)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    assert os.path.exists(CHROMIUM), "no /usr/bin/chromium: run scripts/setup.sh"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=ARGS,
            accept_downloads=True,
            viewport={"width": 1000, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def seed(api: httpx.Client) -> dict[str, Any]:
    """A user with history: decisions, feedback, a superseded note, a pinned one, a plain one."""
    for i in range(3):
        d = api.post(
            "/v1/decisions",
            json={"user_id": "ana", "message": f"How do I sort a list in Python? ({i})"},
        ).json()
        fb = {"user_id": "ana", "decision_id": d["decision_id"], "kind": "rating", "value": 5}
        assert api.post("/v1/feedback", json=fb).status_code == 202
    old = api.post("/v1/users/ana/notes", json={"text": "Studies biology", "key": "background"})
    new = api.post(
        "/v1/users/ana/notes",
        json={"text": "Works as a data engineer", "key": "background", "source": "user"},
    )
    pinned = api.post("/v1/users/ana/notes", json={"text": "Prefers metric units", "pinned": True})
    plain = api.post("/v1/users/ana/notes", json={"text": "Has a cat named Miso"})
    api.post("/v1/decisions", json={"user_id": "ana", "message": "Is my cat Miso a data engineer?"})
    return {n: r.json()["note_id"] for n, r in zip(
        ("old", "new", "pinned", "plain"), (old, new, pinned, plain), strict=True
    )}  # fmt: skip


def notes(api: httpx.Client) -> dict[str, dict]:
    return {n["note_id"]: n for n in api.get("/v1/users/ana/notes").json()["notes"]}


def decide(api: httpx.Client, message: str) -> dict:
    r = api.post("/v1/decisions", json={"user_id": "ana", "message": message})
    assert r.status_code == 200, r.text
    return r.json()


def label(dim: str, level: str, locale: str = "en") -> str:
    d = CATALOG.dimension(dim)
    return d.levels[d.level_names.index(level)].label_in(locale)


def check_shown_matches_the_api(page: Page, api: httpx.Client, ids: dict[str, str]) -> None:
    profile = api.get("/v1/users/ana/profile").json()
    for dim, pref in profile["preferences"].items():
        row = page.locator(f"#pref-{dim}")
        assert label(dim, pref["preferred"]) in row.locator("td").nth(0).inner_text()
        assert f"{round(100 * pref['confidence'])}%" in row.locator("td").nth(1).inner_text()
    assert page.locator("#personalization-state").inner_text().startswith("attune adapts")
    shown = {e.get_attribute("id") for e in page.locator("ul.notes > li").all()}
    live = {k for k, n in notes(api).items() if n["status"] == "live"}
    assert shown == {f"note-{k}" for k in live} and ids["old"] not in live
    assert page.locator(f"#replaced #note-{ids['old']}").count() == 1
    decisions = page.locator("ol.decisions > li")
    assert decisions.count() == 4
    latest = decisions.nth(0).inner_text()
    assert "Has a cat named Miso" in latest  # the note its explanation names
    assert page.locator("html").get_attribute("lang") == "en"


def check_accessible(page: Page) -> None:
    """Every control has a label, headings are in order, and Tab reaches every control."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    levels = page.evaluate("() => [...document.querySelectorAll('h1,h2,h3')].map(h => h.tagName)")
    assert levels[0] == "H1" and levels.count("H1") == 1 and "H2" in levels
    page.locator("body").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    reached = set()
    for _ in range(80):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    for control in ("toggle-pause", "pin-length", "pin-save-length", "new-note", "add-note"):
        assert control in reached, control


def test_the_profile_page_shows_the_profile_and_every_control_works(
    server: tuple[str, Path], browser: BrowserContext, tmp_path: Path
) -> None:
    base, data = server
    api = httpx.Client(base_url=base, headers=HEADERS, timeout=30)
    ids = seed(api)
    link = api.post("/v1/users/ana/profile-link", json={"locale": "en-GB"}).json()
    assert link["url"].startswith(f"{base}/u/") and link["url"].endswith("?lang=en")
    page = browser.new_page()
    assert page.goto(link["url"]).status == 200
    check_shown_matches_the_api(page, api, ids)
    page.screenshot(path=str(tmp_path / "profile-en.png"), full_page=True)
    if os.environ.get("ATTUNE_DOCS_SCREENSHOT"):
        shutil.copy(tmp_path / "profile-en.png", DOCS)
    check_accessible(page)

    # Pin: the next decisions use it and say so.
    page.select_option("#pin-length", "brief")
    page.click("#pin-save-length")
    assert page.locator("#status").inner_text() == "Saved."
    assert api.get("/v1/users/ana/profile").json()["pins"] == {"length": "brief"}
    d = decide(api, "Tell me about rivers")
    assert d["strategy"]["levels"]["length"] == "brief" and d["explanation"][0]["kind"] == "pin"
    assert "pinned: Brief" in page.locator("#pref-length").inner_text()

    # Add a note: stored as the user's, retrieved for a matching message.
    page.fill("#new-note", "Teaches chemistry at a high school")
    page.check("#new-pinned")
    page.click("#add-note")
    [added] = [n for n in notes(api).values() if n["text"].startswith("Teaches chemistry")]
    assert added["source"] == "user" and added["pinned"]
    assert "Teaches chemistry at a high school" in decide(api, "hi")["directives"]["notes"]

    # Edit it: a new version, the old text in its history.
    note = page.locator(f"#note-{added['note_id']}")
    note.locator("summary").first.click()
    note.locator("textarea").fill("Teaches organic chemistry")
    note.locator("label.check input").uncheck()
    note.locator("form button[type=submit]").first.click()
    edited = notes(api)[added["note_id"]]
    assert edited["text"] == "Teaches organic chemistry" and edited["version"] == 2
    assert not edited["pinned"] and edited["history"][0]["text"].startswith("Teaches chemistry")

    # Delete a note (and a replaced one): no longer retrieved, gone from the API.
    assert ids["plain"] in [r.get("note_id") for r in decide(api, "My cat Miso")["explanation"]]
    page.locator(f"#note-{ids['plain']} button.danger").click()
    assert ids["plain"] not in notes(api)
    assert ids["plain"] not in [r.get("note_id") for r in decide(api, "Miso")["explanation"]]
    page.locator("#replaced summary").click()
    page.locator(f"#note-{ids['old']} button.danger").click()
    assert ids["old"] not in notes(api)

    # Pause and resume.
    page.click("#toggle-pause")
    assert api.get("/v1/users/ana/profile").json()["personalization"] == "paused"
    assert decide(api, "Tell me about rivers")["explanation"][0]["kind"] == "paused"
    assert page.locator("#personalization-state").inner_text().startswith("Paused")
    page.click("#toggle-pause")
    assert api.get("/v1/users/ana/profile").json()["personalization"] == "active"

    # In Japanese: the same page, every word in the user's language.
    page.click("nav.languages a[hreflang=ja]")
    assert page.locator("html").get_attribute("lang") == "ja"
    assert page.locator("h1").inner_text() == "attune があなたについて知っていること"
    assert label("length", "brief", "ja") in page.locator("#pref-length").inner_text()
    assert "固定しました" in page.locator("ol.decisions").inner_text()
    page.screenshot(path=str(tmp_path / "profile-ja.png"), full_page=True)

    # Export: a JSON download of everything stored.
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["user_id"] == "ana" and ids["new"] in exported["state"]["notes"]

    # Delete everything, after a confirmation; the API then answers 404.
    page.click("#delete-all")
    assert (
        "attune があなたについて知っていることをすべて削除しますか"
        in page.locator("h1").inner_text()
    )
    assert api.get("/v1/users/ana/profile").status_code == 200  # not before confirming
    page.click("#confirm-delete")
    assert page.locator("h1").inner_text() == "すべて削除しました"
    assert api.get("/v1/users/ana/profile").status_code == 404
    assert page.goto(link["url"]).status == 404  # the link shows nothing anymore

    # Links that must not open: expired, tampered (another user), signed with another key.
    signer = LinkSigner((data / "profile-link.secret").read_text().strip().encode())
    api.post("/v1/decisions", json={"user_id": "bo"})
    expired = signer.sign("acme", "bo", ttl_s=-1)
    response = page.goto(f"{base}/u/{expired}?lang=en")
    assert response is not None and response.status == 410
    assert "The link has expired" in page.content() and "bo" not in page.inner_text("main")
    token = link["url"].split("/u/")[1].split("?")[0]
    body, mac = token.split(".")
    doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    doc["u"] = "bo"
    forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    for bad in (f"{forged}.{mac}", LinkSigner(b"x" * 32).sign("acme", "bo", ttl_s=60)):
        response = page.goto(f"{base}/u/{bad}")
        assert response is not None and response.status == 403
        assert "The link is not valid" in page.content()
        assert page.locator("ol.decisions").count() == 0
