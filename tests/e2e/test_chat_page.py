"""The chat page in a real headless Chromium against a real ``bentoml serve`` of the service.

Model: the MovieLens-100K EASE bundle of the dialogue tests (items 1-400, tests/unit/dialogue_fixtures.py),
packaged as flows.package does (item text embeddings in the model folder). Skips, with the reason, without
playwright, a ``chromium`` binary or the shared datasets. Needs: ``apt-get install -y chromium`` and
``pip install playwright`` (never ``playwright install``: it downloads a browser).

``SESSIONFLOW_SCREENSHOT=docs/chat.png pytest tests/e2e/test_chat_page.py`` refreshes the README screenshot;
otherwise it goes to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.service import PROJECT_ROOT, isolated_bentoml_home, save_bentoml_model, served

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUERY = "a funny sci-fi film from the 90s"
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.skipif(
    sync_playwright is None or CHROMIUM is None,
    reason="browser test needs playwright (pip install playwright) and chromium on PATH "
    "(apt-get install -y chromium); `playwright install` is never used",
)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from components.dialogue.packaging import write_index
    from tests.unit.dialogue_fixtures import EMBEDDING_CACHE, fixture

    fx = fixture()  # skips when ../shared/datasets/ml-100k is absent
    tmp = tmp_path_factory.mktemp("chat-page")
    bundle = tmp / "bundle"
    shutil.copytree(fx.bundle_dir, bundle)
    write_index(bundle, EMBEDDING_CACHE)  # the fixture bundle already has it; as packaging does
    labels = {"registered_model": "sessionflow-recommender", "mlflow_model_version": "1", "model": "ease"}
    with isolated_bentoml_home(tmp / "bentoml_home"):
        tag = save_bentoml_model(bundle, labels)
    with served(tag, tmp / "bentoml_home", tmp / "feedback.db", tmp / "serve.log") as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def logged(db: Path, session_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT item_id, event FROM feedback WHERE session_id = ? ORDER BY id", (session_id,)
        ).fetchall()


def card_ids(page) -> list[str]:
    return page.locator("#results li.card").evaluate_all("cards => cards.map(c => c.dataset.itemId)")


def test_chat_like_dislike_and_start_over(service, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(service.url)
    expect(page).to_have_title(re.compile("sessionflow"))
    expect(page.locator("#tagline")).to_contain_text("films")  # worded after the catalogue spec
    session_id = page.evaluate("sessionStorage.getItem('sessionflow-session')")
    assert session_id

    # a message -> an assistant reply and cards with titles, scores and reasons
    page.get_by_label("Message").fill(QUERY)
    page.get_by_role("button", name="Send").click()
    cards = page.locator("#results li.card")
    expect(cards.first).to_be_visible()
    expect(page.locator("#chat-log .bubble.user")).to_have_text([QUERY])
    reply = page.locator("#chat-log .bubble.assistant").last
    expect(reply).to_contain_text("Sci-Fi")
    titles = cards.locator(".title").all_inner_texts()
    reasons = cards.locator(".reason").all_inner_texts()
    assert len(titles) == 8 and all(titles) and all(reasons)
    assert sum(bool(re.search(r"\(199\d\)", t)) for t in titles) >= 6, titles
    assert any("as asked" in r for r in reasons), reasons
    before = card_ids(page)

    # Like the first card -> the list is re-ranked (the liked item joins the session) and it is logged
    liked_id, liked_title = before[0], titles[0]
    page.get_by_role("button", name=f"Like {liked_title}", exact=True).click()
    expect(page.locator(f"#item-{liked_id}")).to_have_count(0)
    after_like = card_ids(page)
    assert after_like != before and liked_id not in after_like
    expect(page.locator("#memory")).to_contain_text(f"Liked: {liked_title}")
    expect(page.locator("#memory")).to_contain_text("Genre: Comedy, Sci-Fi")
    expect(page.locator("#status")).to_contain_text("list updated")
    assert logged(service.feedback_db, session_id) == [(liked_id, "like")]

    # Dislike another -> it disappears
    disliked_id = after_like[1]
    disliked_title = page.locator(f"#item-{disliked_id} .title").inner_text()
    page.get_by_role("button", name=f"Dislike {disliked_title}", exact=True).click()
    expect(page.locator(f"#item-{disliked_id}")).to_have_count(0)
    assert disliked_id not in card_ids(page) and len(card_ids(page)) == 8
    assert logged(service.feedback_db, session_id) == [(liked_id, "like"), (disliked_id, "dislike")]

    shot = Path(os.environ.get("SESSIONFLOW_SCREENSHOT") or tmp_path / "chat.png")
    shot = shot if shot.is_absolute() else PROJECT_ROOT / shot
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)  # no hover highlight in the picture
    page.screenshot(path=str(shot), full_page=True)

    # Start over -> empty page, fresh session
    page.get_by_role("button", name="Start over").click()
    expect(cards).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#chat-log .bubble")).to_have_count(1)
    assert page.evaluate("sessionStorage.getItem('sessionflow-session')") != session_id

    # how items were received, from the ratings log: the memory panel words it as said, not "up to 90"
    page.get_by_label("Message").fill("an underrated gem")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#memory")).to_contain_text("Rating: underrated gem")
    expect(page.locator("#memory")).to_contain_text("Popularity: underrated gem")
    expect(cards.first.locator(".reason")).to_contain_text("on average by")
    expect(page.locator("#greeting")).not_to_contain_text("ratings")
    assert not errors, errors
