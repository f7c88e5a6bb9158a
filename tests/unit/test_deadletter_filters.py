"""Dead-letter filter expressions: what they select, and errors that say how to fix them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deadletter import filters
from deadletter.filters import FilterError

pytestmark = pytest.mark.unit
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_the_documented_example() -> None:
    f = filters.parse("stage=map partner=acme since=2h reason~timeout", now=NOW)
    assert f.stages == ("map",) and f.partners == ("acme",)
    assert f.since == NOW - timedelta(hours=2)
    assert f.reason_contains == "timeout"
    assert f.statuses == ("parked",)
    assert not f.empty
    assert f.describe() == "stage=map partner=acme since=2h reason~timeout"


def test_lists_quotes_statuses_and_iso_times() -> None:
    f = filters.parse("stage=map,deliver reason~'read timed out' status=all "
                      "since=2024-02-01 until=2024-02-02T06:00Z message=7", now=NOW)
    assert f.stages == ("map", "deliver")
    assert f.reason_contains == "read timed out"
    assert f.statuses == ("parked", "replayed", "discarded")
    assert f.since == datetime(2024, 2, 1, tzinfo=UTC)
    assert f.until == datetime(2024, 2, 2, 6, tzinfo=UTC)
    assert f.message_id == 7


def test_an_empty_expression_selects_every_parked_letter() -> None:
    f = filters.parse("")
    assert f.empty and f.statuses == ("parked",)
    assert f.describe() == "(all parked)"


@pytest.mark.parametrize(("expression", "says"), [
    ("stage=parse", "unknown stage 'parse' (known: validate, map, route, deliver, ack, send)"),
    ("colour=red", "unknown key 'colour'"),
    ("stage~map", "only reason takes '~'"),
    ("stage=map stage=route", "given twice"),
    ("since=yesterday", "not a duration"),
    ("map", "is not key=value"),
    ("reason~'unclosed", "No closing quotation"),
    ("stage=map,,route", "empty value"),
    ("status=lost", "unknown status"),
    ("message=abc", "a message id is a number"),
    ("message=99999999999999999999", "no such message id"),
    ("since=1h until=2h", "must be before until"),
    ("x" * 1001, "longer than 1000"),
    ("partner=" + "a" * 201, "longer than 200"),
    ("partner=ac\x00me", "control characters"),
])
def test_errors_say_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(FilterError, match=None) as caught:
        filters.parse(expression, now=NOW)
    assert says in str(caught.value)


def test_build_from_separate_values_as_options_give_them() -> None:
    f = filters.build(partners=["acme"], stages=["deliver"], since="30m", reason="503",
                      now=NOW)
    assert f.since == NOW - timedelta(minutes=30)
    assert f.describe() == "stage=deliver partner=acme since=30m reason~503"
    # The description parses back to the same filter.
    assert filters.parse(f.describe(), now=NOW) == f
