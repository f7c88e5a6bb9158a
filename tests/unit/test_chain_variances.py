"""The chain checks (gateway.chains.variances): each at, just below and just above its
tolerance, in every arrival order, and waiting for the documents they need."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from gateway.chains import readings as r
from gateway.chains import variances
from gateway.chains.agreement import ChainPolicy, Tolerance

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def line(n: str, qty: str, price: str | None = None, unit: str = "EA",
         ids: list[dict[str, str]] | None = None, **dates: str) -> r.LineReading:
    return r.LineReading(n, ids or [{"kind": "buyer_part", "id": f"P-{n}"}], qty, unit, price,
                         dict(dates))


def po(*lines: r.LineReading) -> r.Reading:
    return r.Reading(r.PURCHASE_ORDER, "PO1", "po", at(0), "PO1", lines=list(lines))


def doc(kind: str, key: str, hours: float, *lines: r.LineReading,
        **facts: Any) -> r.Reading:
    return r.Reading(kind, "PO1", key, at(hours), key, facts=facts, lines=list(lines))


def kinds(found: list[variances.Finding]) -> list[str]:
    return sorted(f.kind for f in found)


def run(docs: list[r.Reading], policy: ChainPolicy | None = None) -> list[variances.Finding]:
    return variances.evaluate("globex", "PO1", docs, policy or ChainPolicy())


# ---- tolerance arithmetic ----------------------------------------------------------------

@pytest.mark.parametrize(("percent", "absolute", "expected", "actual", "within"), [
    ("10", "0", "100", "110", True),      # at the percent
    ("10", "0", "100", "109.99", True),   # just below
    ("10", "0", "100", "110.01", False),  # just above
    ("10", "0", "100", "89.99", False),   # just above, downwards
    ("0", "2", "100", "102", True),       # at the absolute
    ("0", "2", "100", "102.01", False),
    ("1", "5", "100", "105", True),       # the larger allowance counts
    ("1", "5", "100", "105.5", False),
    ("0", "0", "7", "7", True),
    ("0", "0", "7", "7.001", False),
])
def test_tolerance_at_below_and_above(percent: str, absolute: str, expected: str, actual: str,
                                      within: bool) -> None:
    tol = Tolerance(percent=Decimal(percent), absolute=Decimal(absolute))
    assert tol.within(Decimal(expected), Decimal(actual)) is within


# ---- each check at, below and above its tolerance ----------------------------------------

QTY = ChainPolicy(quantity=Tolerance(percent=Decimal(10)))


@pytest.mark.parametrize(("acked", "flagged"), [("90", False), ("90.01", False), ("89.99", True),
                                                ("110", False), ("110.01", True)])
def test_acknowledged_quantity(acked: str, flagged: bool) -> None:
    found = run([po(line("1", "100")), doc(r.PO_ACK, "855", 1, line("1", acked))], QTY)
    assert kinds(found) == (["acknowledged_quantity"] if flagged else [])
    if flagged:
        [f] = found
        assert (f.line_number, f.expected, f.actual) == ("1", "100", acked)
        assert f.tolerance == {"percent": "10", "absolute": "0", "allowed": "10"}


@pytest.mark.parametrize(("shipped", "flagged"), [("72", False), ("71.99", True), ("88", False),
                                                  ("88.01", True)])
def test_shipped_quantity_against_the_acknowledged_one(shipped: str, flagged: bool) -> None:
    policy = ChainPolicy(quantity=Tolerance(absolute=Decimal(8)))
    found = run([po(line("1", "100")), doc(r.PO_ACK, "855", 1, line("1", "80")),
                 doc(r.SHIP_NOTICE, "856", 2, line("1", shipped))], policy)
    assert kinds(found) == ["acknowledged_quantity"] + (["shipped_quantity"] if flagged else [])


@pytest.mark.parametrize(("invoiced", "kind"), [("50", None), ("50.5", None), ("50.51", "invoiced_over_shipped"),
                                                ("49.5", None), ("49.49", "invoiced_quantity")])
def test_invoiced_against_shipped(invoiced: str, kind: str | None) -> None:
    policy = ChainPolicy(quantity=Tolerance(percent=Decimal(1)), expects=["856", "810"])
    found = run([po(line("1", "50")), doc(r.SHIP_NOTICE, "856", 2, line("1", "50")),
                 doc(r.INVOICE, "810", 3, line("1", invoiced))], policy)
    assert kinds(found) == ([kind] if kind else [])
    if kind == "invoiced_over_shipped":
        assert found[0].severity == "error"


@pytest.mark.parametrize(("price", "flagged"), [("10.00", False), ("10.05", False),
                                                ("10.06", True), ("9.95", False), ("9.94", True)])
def test_unit_prices_on_the_855_and_810(price: str, flagged: bool) -> None:
    policy = ChainPolicy(price=Tolerance(absolute=Decimal("0.05")), expects=[])
    found = run([po(line("1", "5", "10.00")), doc(r.PO_ACK, "855", 1, line("1", "5", price)),
                 doc(r.INVOICE, "810", 3, line("1", "5", price))], policy)
    assert kinds(found) == (["acknowledged_price", "invoiced_price"] if flagged else [])


@pytest.mark.parametrize(("promised", "shipped", "flagged"), [
    ("2026-12-02", "2026-11-29", False),  # below: one day late of two allowed
    ("2026-12-03", "2026-11-30", False),  # at: two days late
    ("2026-12-04", "2026-12-01", True),   # above: three days late
])
def test_dates_against_the_requested_ones(promised: str, shipped: str, flagged: bool) -> None:
    policy = ChainPolicy(late_days=2, expects=["855"])
    found = run([po(line("1", "5", requested_delivery="2026-12-01", requested_ship="2026-11-28")),
                 doc(r.PO_ACK, "855", 1, line("1", "5", promised_delivery=promised)),
                 doc(r.SHIP_NOTICE, "856", 2, line("1", "5", ship=shipped))],
                policy)
    assert kinds(found) == (["late_delivery_date", "late_ship_date"] if flagged else [])


def test_an_item_not_on_the_po_is_found_and_a_line_matches_by_item_id() -> None:
    found = run([po(line("1", "5")),
                 doc(r.PO_ACK, "855", 1, line("9", "5", ids=[{"kind": "buyer_part", "id": "P-1"}]),
                     line("7", "2", ids=[{"kind": "vendor_part", "id": "X"}]))],
                ChainPolicy(expects=["855"]))
    assert kinds(found) == ["item_not_on_po"]
    assert found[0].line_number == "7"


@pytest.mark.parametrize(("invoiced", "flagged"), [("98", False), ("97.99", True), ("100", False),
                                                   ("102", False), ("102.01", True)])
def test_three_way_match_once_the_receipt_is_in(invoiced: str, flagged: bool) -> None:
    policy = ChainPolicy(receipt_quantity=Tolerance(percent=Decimal(2)),
                         quantity=Tolerance(percent=Decimal(5)), expects=[])
    docs = [po(line("1", "100", "3")), doc(r.INVOICE, "810", 3, line("1", invoiced, "3"))]
    assert run(docs, policy) == []  # nothing to match before the receipt
    found = run([*docs, doc(r.GOODS_RECEIPT, "rcpt", 4, line("1", "100"))], policy)
    assert kinds(found) == (["three_way_quantity"] if flagged else [])
    if flagged:
        assert (found[0].expected, found[0].actual, found[0].severity) == ("100", invoiced, "error")


def test_a_rejected_functional_ack_is_an_error() -> None:
    found = run([po(line("1", "1")),
                 doc(r.FUNCTIONAL_ACK, "997", 1, accepted=False, reason="AK5 R")])
    assert kinds(found) == ["ack_rejected"] and found[0].severity == "error"
    assert "AK5 R" in found[0].message


# ---- waiting, and every arrival order ------------------------------------------------------

def test_nothing_is_checked_before_the_po() -> None:
    docs = [doc(r.PO_ACK, "855", 1, line("1", "1")), doc(r.INVOICE, "810", 3, line("1", "9"))]
    assert run(docs) == []
    assert variances.state(docs) == variances.WAITING


def test_an_invoice_waits_for_the_expected_ship_notice() -> None:
    docs = [po(line("1", "10")), doc(r.PO_ACK, "855", 1, line("1", "8"))]
    invoice = doc(r.INVOICE, "810", 3, line("1", "8"))
    # Against the PO it would be 2 short; it waits for the 856 instead.
    assert kinds(run([*docs, invoice], QTY)) == ["acknowledged_quantity"]
    asn = doc(r.SHIP_NOTICE, "856", 2, line("1", "8"))
    assert kinds(run([*docs, invoice, asn], QTY)) == ["acknowledged_quantity"]


def story() -> list[r.Reading]:
    """The acceptance story: line 2 cut from 10 to 8 (beyond 5 %), shipped and billed 8,
    6 received."""
    return [
        po(line("1", "24", "4.25"), line("2", "10", "38.5", "CA"), line("3", "5", "12")),
        doc(r.PO_ACK, "855", 1, line("1", "24", "4.25"), line("2", "8", "38.5", "CA"),
            line("3", "5", "12")),
        doc(r.SHIP_NOTICE, "856", 2, line("1", "24"), line("2", "8", unit="CA"), line("3", "5")),
        doc(r.INVOICE, "810", 3, line("1", "24", "4.25"), line("2", "8", "38.5", "CA"),
            line("3", "5", "12")),
        doc(r.GOODS_RECEIPT, "rcpt", 4, line("1", "24"), line("2", "6", unit="CA"),
            line("3", "5")),
    ]


GLOBEX = ChainPolicy(quantity=Tolerance(percent=Decimal(5)),
                     receipt_quantity=Tolerance(percent=Decimal(2)))


def test_the_story_gives_one_quantity_and_one_three_way_exception() -> None:
    found = run(story(), GLOBEX)
    assert [(f.kind, f.line_number, f.expected, f.actual) for f in found] == [
        ("acknowledged_quantity", "2", "10", "8"), ("three_way_quantity", "2", "6", "8")]


@pytest.mark.parametrize("order", list(itertools.permutations(range(5))))
def test_every_arrival_order_gives_the_same_findings(order: tuple[int, ...]) -> None:
    docs = story()
    arrived: list[r.Reading] = []
    emitted: dict[str, variances.Finding] = {}
    for n in order:  # as the store sees it: each arrival checks the chain so far
        arrived.append(docs[n])
        for f in run(arrived, GLOBEX):
            emitted.setdefault(f.key, f)
    assert sorted(emitted) == sorted(f.key for f in run(story(), GLOBEX))
    views = variances.lines(arrived)
    assert [(v.line_number, v.ordered, v.acknowledged, v.shipped, v.invoiced, v.received)
            for v in views][1] == ("2", 10, 8, 8, 8, 6)
