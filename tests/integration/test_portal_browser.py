"""The partner portal in a real browser: Debian's Chromium driven by Playwright, against
the app served by uvicorn on a loopback port, with the pipeline's workers run between
page loads. Screenshots go to var/test-artifacts/portal/ (kept by CI as artifacts).

Chromium and Playwright are real parts: skipped locally when absent, a failure when
EDIGW_REQUIRE_REAL_PARTS=1 (CI). Playwright never downloads a browser here; it launches
/usr/bin/chromium (or EDIGW_CHROMIUM).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.store import db, uploads
from gateway.store.models import DeadLetter, Message
from tests.conftest import REPO
from tests.http_support import serving
from tests.integration.conftest import missing
from tests.portal_support import GOOD_CSV, PASSWORD, PortalSite

pytestmark = pytest.mark.integration
CHROMIUM = Path(os.environ.get("EDIGW_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "var" / "test-artifacts" / "portal"
EXPECTED = json.loads((GOOD_CSV.parent / "asn-EG-55012.expected.json").read_text("utf-8"))
BAD_ROWS = GOOD_CSV.read_text("utf-8").replace(",12,EA,L26-311,2028-05-31\n",
                                               ",twelve,EA,L26-311,2028-05-31\n", 1)

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing("Playwright (pip install playwright)", exc)
    if not os.access(CHROMIUM, os.X_OK):
        missing("Chromium", f"{CHROMIUM} is not there (apt-get install chromium)")
    with sync_playwright() as pw:
        # As root (CI's containers) Chromium's own sandbox cannot start.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield b
        b.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[PortalSite]:
    s = PortalSite(tmp_path)
    yield s
    s.close()


@pytest.fixture
def base_url(site: PortalSite) -> Iterator[str]:
    with serving(site.app) as url:
        yield url


class Shots:
    """Screenshots of a test, numbered in the order taken."""

    def __init__(self, name: str) -> None:
        self.name = re.sub(r"[^\w.-]+", "_", name)
        self.n = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(self, page: Any, what: str) -> None:
        self.n += 1
        page.screenshot(path=str(ARTIFACTS / f"{self.name}-{self.n}-{what}.png"), full_page=True)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)


@pytest.fixture
def new_page(browser: Any, base_url: str) -> Iterator[Any]:
    """Pages in browser contexts of their own (each its own cookies: its own person)."""
    contexts = []

    def make() -> Any:
        ctx = browser.new_context(base_url=base_url)
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def sign_in(page: Any, username: str, password: str = PASSWORD) -> None:
    page.goto("/portal/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def upload(page: Any, path: Path) -> None:
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()


def status_on_history(page: Any, name: str) -> str:
    """The status cell of the history row of the file called name."""
    row = page.locator("table.history tbody tr", has_text=name)
    return row.locator("td.status").inner_text().strip()


def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "asn-EG-55012.csv"
    path.write_bytes(GOOD_CSV.read_bytes())
    return path


def test_sign_in_upload_a_good_csv_see_it_accepted_then_its_status_move(
        site: PortalSite, new_page: Any, shots: Shots, tmp_path: Path) -> None:
    page = new_page()
    sign_in(page, "ana")
    assert page.url.endswith("/portal/uploads")
    assert page.get_by_text("Evergreen Pantry Foods · ana").is_visible()
    shots.take(page, "signed-in")
    upload(page, good_file(tmp_path))
    page.get_by_role("status").wait_for()
    assert "Accepted: asn-EG-55012.csv is on its way." in page.get_by_role("status").inner_text()
    assert page.locator("#status").inner_text() == "accepted"
    shots.take(page, "accepted")
    (msg_id,) = re.findall(r"/portal/uploads/(\d+)", page.url)
    page.get_by_role("link", name="All uploads").click()
    assert status_on_history(page, "asn-EG-55012.csv") == "accepted"

    assert site.run_pipeline() > 0
    page.reload()
    shown = status_on_history(page, "asn-EG-55012.csv")
    shots.take(page, "after-pipeline")
    with db.transaction(site.engine, write=False) as s:
        stored = uploads.one(s, "evergreen", int(msg_id))
    assert stored is not None and stored.status != uploads.ACCEPTED
    # The page says what the store says, reason and all.
    assert shown == stored.status + (f": {stored.reason}" if stored.reason else "")


def test_the_uploaded_ship_notice_reaches_the_erp_and_shows_delivered(
        site: PortalSite, new_page: Any, shots: Shots, tmp_path: Path) -> None:
    page = new_page()
    sign_in(page, "ana")
    upload(page, good_file(tmp_path))
    page.get_by_role("status").wait_for()
    site.run_pipeline()
    page.goto("/portal/uploads")
    shots.take(page, "history")
    assert status_on_history(page, "asn-EG-55012.csv") == "delivered"
    events = [json.loads(line) for line in site.events_file.read_text("utf-8").splitlines()]
    # Once, with the canonical shape the mapping's own example expects (as from X12).
    assert [(e["type"], e["subject"], e["data"]) for e in events] == [
        ("com.edi-gateway.ship_notice.v1", "EG-55012", EXPECTED)]


def test_an_accepted_file_that_fails_later_shows_dead_lettered_with_the_reason(
        tmp_path: Path, browser: Any, shots: Shots) -> None:
    # Routes for invoices only: a ship notice, once mapped, has nowhere to go.
    site = PortalSite(tmp_path, routes=[{"name": "invoices-only", "to": ["erp"],
                                         "match": {"type": "invoice", "partner": "*"}}])
    try:
        with serving(site.app) as url:
            ctx = browser.new_context(base_url=url)
            page = ctx.new_page()
            sign_in(page, "ana")
            upload(page, good_file(tmp_path))
            page.get_by_role("status").wait_for()
            site.run_pipeline()
            page.goto("/portal/uploads")
            shown = status_on_history(page, "asn-EG-55012.csv")
            page.get_by_role("link", name=re.compile(r"^\d+$")).first.click()
            detail_reason = page.locator("#reason").inner_text()
            shots.take(page, "dead-lettered")
            ctx.close()
    finally:
        site.close()
    with db.transaction(site.engine, write=False) as s:
        reason = s.scalars(select(DeadLetter.reason).order_by(DeadLetter.id.desc())).first()
    assert reason
    assert shown == f"dead-lettered: {reason}"
    assert detail_reason == reason


def test_a_bad_csv_shows_its_row_and_column_errors_and_is_not_accepted(
        site: PortalSite, new_page: Any, shots: Shots, tmp_path: Path) -> None:
    page = new_page()
    sign_in(page, "ana")
    bad = tmp_path / "asn-typo.csv"
    bad.write_text(BAD_ROWS, encoding="utf-8")
    upload(page, bad)
    alert = page.locator("section.problems")
    alert.wait_for()
    shots.take(page, "row-errors")
    assert "asn-typo.csv was not accepted" in alert.inner_text()
    cells = [[td.inner_text() for td in tr.locator("td").all()]
             for tr in page.locator("table.errors tbody tr").all()]
    assert cells == [["2", "12 (qty)", "'twelve' is not a number"]]
    assert "No uploads yet." in page.content()
    with db.transaction(site.engine, write=False) as s:
        assert s.scalars(select(Message)).all() == []


def test_partner_a_cannot_open_partner_bs_upload(
        new_page: Any, shots: Shots, tmp_path: Path) -> None:
    ana = new_page()
    sign_in(ana, "ana")
    upload(ana, good_file(tmp_path))
    ana.get_by_role("status").wait_for()
    theirs = ana.url.split("?")[0]
    ben = new_page()
    sign_in(ben, "ben")
    assert ben.get_by_text("Brightline").first.is_visible()
    response = ben.goto(theirs)
    assert response is not None and response.status == 404
    assert ben.get_by_role("heading", name="No such upload").is_visible()
    shots.take(ben, "404")
    assert "asn-EG-55012.csv" not in ben.goto("/portal/uploads").text()  # type: ignore[union-attr]
    assert ana.goto(theirs).status == 200


def test_a_post_without_the_csrf_token_is_refused(
        site: PortalSite, new_page: Any, shots: Shots, tmp_path: Path) -> None:
    page = new_page()
    sign_in(page, "ana")
    # The form as a forger would post it: everything but the session's token.
    page.locator("form[action='/portal/uploads'] input[name='csrf_token']").evaluate(
        "e => e.remove()")
    upload(page, good_file(tmp_path))
    page.get_by_role("heading", name="Form refused").wait_for()
    shots.take(page, "csrf-refused")
    assert "security token is missing" in page.get_by_role("alert").inner_text()
    with db.transaction(site.engine, write=False) as s:
        assert s.scalars(select(Message)).all() == []
    # And the sign-in form likewise.
    other = new_page()
    other.goto("/portal/login")
    other.locator("input[name='csrf_token']").evaluate("e => e.value = 'forged'")
    other.get_by_label("Username").fill("ana")
    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    other.get_by_role("heading", name="Form refused").wait_for()
