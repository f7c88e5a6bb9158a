"""The http output's reading of ERP answers: which statuses retry, and Retry-After."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical import envelope, errors
from channels import registry
from channels.erp_http import HttpOutput, parse_retry_after

pytestmark = pytest.mark.unit

NOW = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)
PO = {"po_number": "PO1", "lines": [{"line_number": "1", "quantity": {"value": "1", "unit": "EA"}}]}


def event() -> envelope.Event:
    keys = {"isa13": "000000101", "gs06": "101", "st02": "0001"}
    return envelope.make_event("purchase_order", PO, partner="acme", keys=keys, time=NOW)


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0),
    (" 0 ", 0.0),
    ("Tue, 12 Mar 2024 09:31:30 GMT", 90.0),
    ("Tue, 12 Mar 2024 09:00:00 GMT", 0.0),  # already past: go now
    ("99999999999999999999", 1e20),  # huge, but a number: the retry policy caps it
    ("9" * 5000, math.inf),
    ("Fri, 31 Dec 9999 23:59:59 GMT",
     (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - NOW).total_seconds()),
    ("²", None),  # a digit to str.isdigit(), not to float()
    ("Tue, 12 Mar 2024 09:31:30 +9999", None),
    ("-5", None),
    ("soon", None),
    ("\u00b2", None),  # isdigit() says yes, float() says no
    ("\u0663", None),
    ("", None),
    (None, None),
])
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


@given(st.one_of(st.text(), st.text(st.sampled_from("0123456789\u00b2\u00b3\u0663\u2070"), min_size=1),
                 st.from_regex(r"\A\s*[0-9]{1,400}\s*\Z"),
                 st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
                 st.from_regex(r"\A[A-Z][a-z]{2}, [0-9]{1,2} [A-Z][a-z]{2} -?[0-9]{1,6} "
                               r"[0-9]{1,3}:[0-9]{2}:[0-9]{2} [-+A-Z0-9]{1,6}\Z")))
def test_any_retry_after_is_seconds_or_none_and_never_raises(value: str) -> None:
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or seconds >= 0


def answer(status: int, headers: dict[str, str] | None = None, text: str = "") -> httpx.Response:
    return httpx.Response(status, headers=headers, text=text,
                          request=httpx.Request("POST", "http://127.0.0.1/events"))


@pytest.fixture
def out() -> HttpOutput:
    built = registry.build_output("http", {"url": "http://127.0.0.1/events"})
    assert isinstance(built, HttpOutput)
    return built


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_statuses_worth_retrying_are_transient(out: HttpOutput, status: int) -> None:
    with pytest.raises(errors.DeliveryUnavailable) as caught:
        out._receipt(event(), answer(status, {"Retry-After": "4"}), "sending")
    assert (caught.value.status, caught.value.retry_after) == (status, 4.0)


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 413, 422])
def test_other_answers_are_permanent_with_an_excerpt(out: HttpOutput, status: int) -> None:
    with pytest.raises(errors.DeliveryRejected) as caught:
        out._receipt(event(), answer(status, text="x" * 2000), "sending")
    assert caught.value.status == status
    assert caught.value.body == "x" * 500


def test_timeouts_default_to_connect_5_and_read_30(out: HttpOutput) -> None:
    out.connect()
    assert out._client is not None
    timeout = out._client.timeout
    out.close()
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (5, 30, 30, 5)


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://127.0.0.1/events", "scheme should be 'http' or 'https'"),
    ("127.0.0.1/events", "relative URL without a base"),
    ("http://127.0.0.1:99999/events", "invalid port"),
    # The URL parser takes these; the resolver's IDNA encoding would fail on every send.
    ("http://" + "a" * 64 + ".test/events", "1 to 63 characters"),
    ("http://erp..test/events", "1 to 63 characters"),
])
def test_an_invalid_erp_url_is_refused_when_the_output_is_built(url: str, why: str) -> None:
    with pytest.raises(errors.ConfigError, match=f"output http: invalid settings: url: .*{why}"):
        registry.build_output("http", {"url": url})


@pytest.mark.parametrize("refusal", [
    httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'gopher://'."),
    httpx.InvalidURL("Invalid non-printable ASCII character in URL"),
    UnicodeError("encoding with 'idna' codec failed (UnicodeError: label too long)"),
])
def test_a_url_refused_at_send_time_is_a_config_error_not_a_retry(
        out: HttpOutput, monkeypatch: pytest.MonkeyPatch, refusal: Exception) -> None:
    out.connect()
    assert out._client is not None

    def refuse(*args: object, **kwargs: object) -> httpx.Response:
        raise refusal

    monkeypatch.setattr(out._client, "post", refuse)
    with pytest.raises(errors.ConfigError, match=type(refusal).__name__) as caught:
        out.write(event())
    assert isinstance(caught.value, errors.PermanentError)  # dead-lettered, never retried
    assert caught.value.__cause__ is refusal
