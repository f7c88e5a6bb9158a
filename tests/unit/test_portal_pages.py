"""The portal's pages in-process (Starlette's test client): sign-in, CSRF, the throttle,
every bad upload's message, uploads under generated names, other partners' uploads as
404, statuses read from the store, and the CSV export. The browser tests drive the same
pages in Chromium (tests/integration/test_portal_browser.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.portal import passwords
from gateway.store import db, uploads, users
from gateway.store.models import (
    Audit,
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Event,
    Message,
    MessageStatus,
    PortalUpload,
)
from tests.portal_support import GOOD_CSV, PASSWORD, PortalSite, csrf_of

pytestmark = pytest.mark.unit
BAD_ROWS = GOOD_CSV.read_text("utf-8").replace("11/25/2026,FDEG", "13/45/2026,FDEG", 1)
BAD_ROWS = BAD_ROWS.replace(",2,CA,", ",two,CA,")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[PortalSite]:
    s = PortalSite(tmp_path, max_upload=64 * 1024)
    yield s
    s.close()


def client(site: PortalSite) -> TestClient:
    return TestClient(site.app, follow_redirects=False, client=("198.51.100.7", 50000))


def signed_in(site: PortalSite, username: str = "ana") -> tuple[TestClient, str]:
    """A client signed in as username, and the CSRF token of its session."""
    c = client(site)
    token = csrf_of(c.get("/portal/login").text)
    r = c.post("/portal/login", data={"username": username, "password": PASSWORD,
                                      "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/portal/uploads", r.text
    return c, csrf_of(c.get("/portal/uploads").text)


def upload(c: TestClient, token: str, data: bytes, name: str = "asn.csv"):  # type: ignore[no-untyped-def]
    return c.post("/portal/uploads", data={"csrf_token": token},
                  files={"file": (name, data, "text/csv")})


def messages(site: PortalSite) -> list[Message]:
    with db.transaction(site.engine, write=False) as s:
        return list(s.scalars(select(Message).order_by(Message.id)))


# ---- signing in ------------------------------------------------------------------------

def test_login_page_and_its_cookie(site: PortalSite) -> None:
    r = client(site).get("/portal/login")
    assert r.status_code == 200
    assert '<label for="username">Username</label>' in r.text
    assert '<label for="password">Password</label>' in r.text
    assert ">Sign in</button>" in r.text
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/portal" in cookie
    assert "secure" not in cookie  # plain http on loopback; https adds it
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_wrong_password_and_unknown_user_get_the_same_answer(site: PortalSite) -> None:
    c = client(site)
    token = csrf_of(c.get("/portal/login").text)
    wrong = c.post("/portal/login", data={"username": "ana", "password": "nope nope nope",
                                          "csrf_token": token})
    unknown = c.post("/portal/login", data={"username": "zed", "password": "nope nope nope",
                                            "csrf_token": token})
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password." in wrong.text and "Wrong username or password." in unknown.text
    assert c.get("/portal/uploads").status_code == 303  # still signed out
    with db.transaction(site.engine, write=False) as s:
        rows = s.scalars(select(Audit).where(Audit.action == "portal.sign_in_failed")).all()
    assert [r.target for r in rows] == ["portal-user:ana", "portal-user:zed"]
    assert all(PASSWORD not in str(r.details) for r in rows)


def test_sign_in_attempts_are_throttled_by_the_injected_clock(site: PortalSite) -> None:
    c = client(site)
    token = csrf_of(c.get("/portal/login").text)
    for _ in range(5):
        assert c.post("/portal/login", data={"username": "ana", "password": "guess guess guess",
                                             "csrf_token": token}).status_code == 401
    right = {"username": "ana", "password": PASSWORD, "csrf_token": token}
    blocked = c.post("/portal/login", data=right)
    assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
    assert "15 minutes" in blocked.text
    # Another person at another address is not locked out by it.
    other = TestClient(site.app, follow_redirects=False, client=("192.0.2.1", 1))
    t2 = csrf_of(other.get("/portal/login").text)
    assert other.post("/portal/login", data={"username": "ana", "password": PASSWORD,
                                             "csrf_token": t2}).status_code == 303
    site.clock.now += 15 * 60
    assert c.post("/portal/login", data=right).status_code == 303


@pytest.mark.parametrize("form", [
    {"username": "ana", "password": PASSWORD},
    {"username": "ana", "password": PASSWORD, "csrf_token": ""},
    {"username": "ana", "password": PASSWORD, "csrf_token": "forged-token"},
])
def test_sign_in_without_the_sessions_csrf_token_is_refused(site: PortalSite,
                                                            form: dict[str, str]) -> None:
    c = client(site)
    c.get("/portal/login")
    r = c.post("/portal/login", data=form)
    assert r.status_code == 403 and "security token" in r.text
    assert c.get("/portal/uploads").status_code == 303


def test_a_token_from_before_sign_in_is_worthless_after_it(site: PortalSite) -> None:
    c = client(site)
    before = csrf_of(c.get("/portal/login").text)
    c.post("/portal/login", data={"username": "ana", "password": PASSWORD, "csrf_token": before})
    assert upload(c, before, GOOD_CSV.read_bytes()).status_code == 403
    assert messages(site) == []


def test_sign_out_ends_the_session(site: PortalSite) -> None:
    c, token = signed_in(site)
    assert c.post("/portal/logout", data={}).status_code == 403  # no token: refused
    r = c.post("/portal/logout", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/portal/login"
    assert c.get("/portal/uploads").status_code == 303
    assert upload(c, token, GOOD_CSV.read_bytes()).status_code == 403


def test_a_disabled_users_session_ends_at_the_next_request(site: PortalSite) -> None:
    c, _ = signed_in(site)
    with db.transaction(site.engine) as s:
        users.disable(s, "ana")
    assert c.get("/portal/uploads").headers["location"] == "/portal/login"


# ---- uploading -----------------------------------------------------------------------

def test_a_good_file_is_accepted_under_a_generated_name(site: PortalSite) -> None:
    c, token = signed_in(site)
    r = upload(c, token, GOOD_CSV.read_bytes(), name="../../etc/=evil.csv")
    assert r.status_code == 303
    (msg,) = messages(site)
    assert r.headers["location"] == f"/portal/uploads/{msg.id}?accepted=1"
    assert (msg.partner, msg.channel) == ("evergreen", "portal:ana")
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}\.csv", msg.source_name)
    page = c.get(r.headers["location"]).text
    assert "Accepted: =evil.csv is on its way." in page
    assert re.search(r'id="status">accepted<', page)
    with db.transaction(site.engine, write=False) as s:
        row = s.get_one(PortalUpload, msg.id)
    assert (row.original_name, row.username, row.size) == ("=evil.csv", "ana",
                                                            len(GOOD_CSV.read_bytes()))
    again = upload(c, token, GOOD_CSV.read_bytes(), name="again.csv")
    assert again.headers["location"] == f"/portal/uploads/{msg.id}?repeat=1"
    assert "uploaded before" in c.get(again.headers["location"]).text
    assert len(messages(site)) == 1


def test_bad_rows_are_listed_with_row_and_column_and_nothing_is_accepted(site: PortalSite) -> None:
    c, token = signed_in(site)
    r = upload(c, token, BAD_ROWS.encode(), name="asn-bad.csv")
    assert r.status_code == 422
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", r.text)
    assert rows == [("2", "2 (ship_date)", "&#39;13/45/2026&#39; is not a calendar date"),
                    ("5", "12 (qty)", "&#39;two&#39; is not a number")]
    assert "asn-bad.csv was not accepted" in r.text
    assert messages(site) == []


@pytest.mark.parametrize(("data", "says"), [
    (b"", "The file is empty"),
    (b"shipment_id,qty\n\xff\xfe1,2\n", "not UTF-8 text: byte 0xff on line 2"),
    (b"PK\x03\x04rest-of-a-workbook", "spreadsheet workbook"),
    (b"\x00\x01\x02binary", "not a text file"),
    (b"ISA*00*          *00*", "X12 EDI file, not CSV"),
    (b'{"shipment_id": "x"}', "JSON document, not CSV"),
    (b"\n\n\n", "only blank lines"),
    (GOOD_CSV.read_bytes().splitlines(keepends=True)[0], "header row but no data rows"),
    (b"sku,qty\nA,1\n", "the header row has no column &#39;shipment_id&#39;"),
])
def test_every_bad_input_gets_a_clear_message(site: PortalSite, data: bytes, says: str) -> None:
    c, token = signed_in(site)
    r = upload(c, token, data)
    assert r.status_code == 422 and says in r.text, r.text
    assert messages(site) == []


def test_no_file_chosen(site: PortalSite) -> None:
    c, token = signed_in(site)
    r = c.post("/portal/uploads", data={"csrf_token": token},
               files={"file": ("", b"", "application/octet-stream")})
    assert r.status_code == 422 and "Choose a CSV file" in r.text


def test_an_upload_over_the_limit_gets_a_page_not_a_problem(site: PortalSite) -> None:
    c, token = signed_in(site)
    big = GOOD_CSV.read_bytes() * 2000  # ~1.5 MB, past the API's own 1 MB body limit too
    r = upload(c, token, big)
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
    assert "File too large" in r.text and "64 KB" in r.text
    slightly = upload(c, token, b"x" * (64 * 1024 + 1))  # over the file limit, under the form's
    assert slightly.status_code == 422
    assert "The file is 65,537 bytes; the portal takes files of up to 65,536 bytes" in slightly.text
    assert messages(site) == []


def test_a_chunked_upload_is_counted_as_it_arrives(site: PortalSite) -> None:
    c, token = signed_in(site)
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
            f"{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode()

    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield head
        for _ in range(200):
            yield b"y" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()
    r = c.post("/portal/uploads", content=body(),
               headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "File too large" in r.text
    assert messages(site) == []


def test_upload_without_the_csrf_token_or_session_is_refused(site: PortalSite) -> None:
    c, _ = signed_in(site)
    r = c.post("/portal/uploads", files={"file": ("a.csv", GOOD_CSV.read_bytes(), "text/csv")})
    assert r.status_code == 403 and "security token" in r.text
    anon = client(site)
    anon_token = csrf_of(anon.get("/portal/login").text)
    r = upload(anon, anon_token, GOOD_CSV.read_bytes())
    assert r.status_code == 403 and "Sign in again" in r.text
    assert messages(site) == []


# ---- history, statuses, other partners -------------------------------------------------

def test_another_partners_upload_is_404_like_one_that_does_not_exist(site: PortalSite) -> None:
    ana, token = signed_in(site, "ana")
    upload(ana, token, GOOD_CSV.read_bytes())
    (msg,) = messages(site)
    ben, _ = signed_in(site, "ben")
    theirs = ben.get(f"/portal/uploads/{msg.id}")
    missing = ben.get("/portal/uploads/999999")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text  # nothing tells theirs from none at all
    assert "There is no upload with that number among yours." in theirs.text
    assert ben.get("/portal/uploads/x1").status_code == 404
    assert ben.get("/portal/uploads/" + "9" * 40).status_code == 404
    assert "No uploads yet." in ben.get("/portal/uploads").text
    assert "asn.csv" not in ben.get("/portal/uploads.csv").text
    assert ana.get(f"/portal/uploads/{msg.id}").status_code == 200


def test_statuses_follow_the_store(site: PortalSite) -> None:
    c, token = signed_in(site)
    upload(c, token, GOOD_CSV.read_bytes(), name="one.csv")
    upload(c, token, BAD_ROWS.replace("EG-55012", "EG-55013").encode(), name="x.csv")
    upload(c, token, GOOD_CSV.read_bytes().replace(b"EG-55012", b"EG-55014"), name="two.csv")
    one, two = (m.id for m in messages(site))
    with db.transaction(site.engine) as s:
        s.get_one(Message, one).status = MessageStatus.DONE
        s.add(Event(event_id="ev-1", message_id=one, type="ship_notice", partner="evergreen",
                    envelope={}))
        s.flush()
        s.add(Delivery(event_id="ev-1", destination="erp", status=DeliveryStatus.DELIVERED))
        s.get_one(Message, two).status = MessageStatus.DEAD
        s.add(DeadLetter(message_id=two, stage="map", reason="=no route for ship_notice"))
    page = c.get("/portal/uploads").text
    assert re.search(r"one\.csv</td>.*?class=\"status delivered\">delivered<", page, re.S)
    assert re.search(r"two\.csv</td>.*?class=\"status dead-lettered\">dead-lettered: "
                     r"=no route for ship_notice<", page, re.S)
    assert "x.csv" not in page  # refused before it was accepted: never an upload
    detail = c.get(f"/portal/uploads/{two}").text
    assert 'id="reason">=no route for ship_notice<' in detail
    export = c.get("/portal/uploads.csv")
    assert export.headers["content-disposition"] == 'attachment; filename="uploads.csv"'
    lines = export.content.decode("utf-8-sig").splitlines()
    assert lines[1].endswith(",dead-lettered,'=no route for ship_notice")
    assert ",delivered," in lines[2]
    with db.transaction(site.engine, write=False) as s:
        assert uploads.one(s, "brightline", one) is None


def test_home_sends_you_where_you_belong(site: PortalSite) -> None:
    assert client(site).get("/portal").headers["location"] == "/portal/login"
    c, _ = signed_in(site)
    assert c.get("/portal/").headers["location"] == "/portal/uploads"
    assert c.get("/portal/login").headers["location"] == "/portal/uploads"
    css = c.get("/portal/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_a_hash_made_with_weaker_parameters_is_upgraded_at_sign_in(site: PortalSite) -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("short-old-pw")
    with db.transaction(site.engine) as s:
        users.add(s, username="old", partner="evergreen", password_hash=weak)
    c = client(site)
    token = csrf_of(c.get("/portal/login").text)
    r = c.post("/portal/login", data={"username": "old", "password": "short-old-pw",
                                      "csrf_token": token})
    assert r.status_code == 303  # a password from before the length rule still works
    with db.transaction(site.engine, write=False) as s:
        now = users.find(s, "old")
    assert now is not None and now.password_hash != weak
    assert not passwords.needs_rehash(now.password_hash)
