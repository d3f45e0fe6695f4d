"""The web page in a real browser: Debian's Chromium driven by Playwright, against a real
`footnote serve` on 127.0.0.1. `make screenshots` saves the main states to docs/screenshots."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .serving import Server

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does)",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.slow

QUESTION = "Which resolutions were cited?"
NOT_COVERED = "The documents do not cover this question."
KEY = "web-key-4c1e"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def _serve(tmp: Path, corpus_dir: Path, index_dir: Path, **env: str) -> Server:
    shutil.copytree(corpus_dir, tmp / "corpus")
    shutil.copytree(index_dir, tmp / "index")  # the session's index: no embedding at start
    return Server({"FOOTNOTE_CORPUS_DIR": str(tmp / "corpus"), "FOOTNOTE_INDEX_DIR": str(tmp / "index"),
                   "FOOTNOTE_STATE_DIR": str(tmp / "state"), **env}, tmp / "serve.log").wait_healthy()


@pytest.fixture(scope="module")
def server(engine, corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:  # noqa: ANN001
    running = _serve(tmp_path_factory.mktemp("web"), corpus_dir, engine.settings.index_dir)
    yield running
    running.stop()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    yield page
    context.close()
    assert not errors, errors


def shoot(page: Page, request: pytest.FixtureRequest, name: str) -> None:
    """Saved where `--screenshots DIR` says (`make screenshots`), else nowhere."""
    folder = request.config.getoption("--screenshots")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def ask(page: Page, question: str) -> None:
    page.fill("#question", question)
    page.keyboard.press("Enter")
    expect(page.locator(".turn .answer").last).to_have_attribute("aria-busy", "false", timeout=30_000)


def test_the_answer_streams_in_and_its_marker_opens_the_exact_quote(
    page: Page, server: Server, request: pytest.FixtureRequest
) -> None:
    # Every state the answer goes through, recorded as the page changes it.
    page.evaluate("""() => {
        window.states = [];
        new MutationObserver(() => {
            const answer = document.querySelector('.turn .answer');
            if (answer) window.states.push({text: answer.textContent, busy: answer.getAttribute('aria-busy'),
                                            cited: !!document.querySelector('.turn .citations')});
        }).observe(document.getElementById('conversation'), {subtree: true, childList: true, characterData: true,
                                                              attributes: true});
    }""")
    ask(page, QUESTION)
    states = page.evaluate("window.states")
    assert any(s["busy"] == "true" and s["text"] and not s["cited"] for s in states), states  # streamed first
    expected = httpx.post(f"{server.url}/ask", json={"question": QUESTION}).json()
    assert page.locator(".turn .answer").inner_text().replace("\n", " ").startswith(expected["answer"][:60])
    expect(page.locator(".turn .citations li")).to_have_count(len(expected["citations"]))

    page.locator(".turn .marker", has_text="[1]").click()
    active = page.locator("#reader-text mark.active")
    expect(active).to_have_text(expected["citations"][0]["quote"])
    expect(active).to_be_in_viewport()
    same_doc = [c for c in expected["citations"] if c["source"] == expected["citations"][0]["source"]]
    expect(page.locator("#reader-text mark")).to_have_count(len(same_doc))  # every quote from it is marked
    shoot(page, request, "answer-and-source")

    # A 👍 lands in the same feedback store as Slack's votes.
    page.get_by_role("button", name="Helpful", exact=True).click()
    expect(page.locator(".feedback .meta")).to_have_text("Thanks: vote recorded.")
    votes = httpx.get(f"{server.url}/feedback").json()
    assert votes[0]["question"] == QUESTION and votes[0]["vote"] == "up" and votes[0]["channel"] == "web"


def test_a_question_the_documents_do_not_cover_is_shown_as_such(page: Page, request: pytest.FixtureRequest) -> None:
    ask(page, "What is the boiling point of tungsten?")
    answer = page.locator(".turn .answer")
    expect(answer).to_have_text(NOT_COVERED)
    expect(answer).to_have_class("answer refused")
    expect(page.locator(".turn .citations")).to_have_count(0)
    shoot(page, request, "refusal")


def test_upload_ask_and_delete_through_the_page(page: Page, server: Server, request: pytest.FixtureRequest) -> None:
    page.click("#docs-toggle")
    page.set_input_files("#file-input", [
        {"name": "owls.txt", "mimeType": "text/plain",
         "buffer": b"Barn owls roost in the bell tower of Saint Oswald's church in Grasmere."},
        {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""},
    ])
    expect(page.locator("#uploads li", has_text="owls.txt")).to_contain_text("added as owls.txt", timeout=30_000)
    expect(page.locator("#uploads li", has_text="empty.txt")).to_contain_text("no text")  # the API's own message
    expect(page.locator("#doc-table tbody tr", has_text="owls.txt")).to_have_count(1)
    shoot(page, request, "documents")

    ask(page, "Where do the barn owls roost?")
    expect(page.locator(".turn .citations li").first).to_contain_text("owls.txt")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete owls.txt").click()
    expect(page.locator("#doc-table tbody tr", has_text="owls.txt")).to_have_count(0)
    assert "owls.txt" not in {d["source"] for d in httpx.get(f"{server.url}/documents").json()}


def test_document_text_is_shown_as_text_and_never_runs(page: Page, server: Server) -> None:
    planted = (b"Title: <script>window.pwned = 'title'</script>\n\nThe heron report: herons nest in alder carr. "
               b"<img src=x onerror=\"window.pwned = 'img'\"> <script>window.pwned = 'script'</script> "
               b"<b onmouseover=\"window.pwned = 'b'\">bold</b>")
    response = httpx.post(f"{server.url}/documents", files=[("files", ("heron.txt", planted))])
    assert response.status_code == 200, response.text
    try:
        page.click("#docs-toggle")
        expect(page.locator("#doc-table tbody tr", has_text="heron.txt")).to_contain_text("<script>")
        ask(page, "Where do herons nest?")
        page.locator(".turn .cite").first.click()
        reader = page.locator("#reader-text")
        expect(reader).to_contain_text("<img src=x onerror=\"window.pwned = 'img'\">")
        expect(reader).to_contain_text("<script>window.pwned = 'script'</script>")
        assert page.locator("#reader-text img, #reader-text script, #reader-text b").count() == 0
        page.locator("#reader-text").hover()
        assert page.evaluate("window.pwned") is None
    finally:
        httpx.delete(f"{server.url}/documents/heron.txt")


def test_keyboard_only(page: Page) -> None:
    # The question box has focus on arrival; Enter asks; Tab reaches the answer's markers.
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    expect(page.locator(".turn .answer")).to_have_attribute("aria-busy", "false", timeout=30_000)
    page.locator(".turn h3").focus()  # where a screen reader's user would be after the announcement
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('marker')"):
            break
    else:
        pytest.fail("Tab never reached a [n] marker")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.press("Enter")
    expect(page.locator("#reader-text mark.active")).to_be_focused()
    assert page.locator("#status").get_attribute("aria-live") == "polite"


def test_the_page_is_self_contained_small_and_locked_down(page: Page, server: Server) -> None:
    response = httpx.get(server.url)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    weight = len(response.content) + sum(len(httpx.get(f"{server.url}/static/{name}").content)
                                         for name in ("app.js", "app.css", "icon.svg"))
    assert weight < 100_000, weight
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.reload()
    ask(page, QUESTION)
    assert requested and all(url.startswith(server.url) for url in requested), requested


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_width_in_both_themes(browser: Browser, server: Server, scheme: str,
                                    request: pytest.FixtureRequest) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(server.url)
    ask(page, QUESTION)
    page.locator(".turn .marker").first.click()
    expect(page.locator("#reader-text mark.active")).to_be_in_viewport()
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")  # nothing off the side
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    dark = sum(int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3]) < 200
    assert dark is (scheme == "dark"), background
    shoot(page, request, f"phone-{scheme}")
    context.close()


def test_with_keys_the_page_asks_for_one_and_asks_again_after_a_401(
    browser: Browser, engine, corpus_dir: Path, tmp_path: Path, request: pytest.FixtureRequest  # noqa: ANN001
) -> None:
    keyed = _serve(tmp_path, corpus_dir, engine.settings.index_dir, FOOTNOTE_API_KEYS=KEY)
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(keyed.url)
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        shoot(page, request, "key-prompt")
        page.fill("#key-input", "wrong-key")
        page.keyboard.press("Enter")
        expect(page.locator("#key-error")).to_be_visible()  # refused: asked again
        page.fill("#key-input", KEY)
        page.keyboard.press("Enter")
        expect(dialog).to_be_hidden()
        ask(page, QUESTION)
        expect(page.locator(".turn .citations li").first).to_be_visible()
        assert KEY not in page.url and page.evaluate("sessionStorage.getItem('footnote-api-key')") == KEY
        context.close()
    finally:
        keyed.stop()
