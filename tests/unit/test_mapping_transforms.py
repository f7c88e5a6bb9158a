"""Value transforms: dates, times, implied decimals, numbers, tables."""

from __future__ import annotations

import pytest

from mappings.language import transforms as t
from mappings.language.transforms import TransformError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("fmt", "raw", "iso"), [
    ("CCYYMMDD", "20240301", "2024-03-01"),
    ("YYMMDD", "240301", "2024-03-01"),
    ("YYMMDD", "991231", "1999-12-31"),
    ("auto", "20240229", "2024-02-29"),
    ("auto", "240229", "2024-02-29"),
    ("MM/DD/CCYY", "11/25/2026", "2026-11-25"),
    ("MM/DD/CCYY", "1/5/2027", "2027-01-05"),
])
def test_dates(fmt, raw, iso):
    assert t.date(fmt)(raw) == iso


@pytest.mark.parametrize(("fmt", "raw"), [("CCYYMMDD", "20240230"), ("CCYYMMDD", "240301"),
                                          ("YYMMDD", "20240301"), ("auto", "2024-03-01"),
                                          ("auto", "1234567"), ("MM/DD/CCYY", "25/11/2026"),
                                          ("MM/DD/CCYY", "2026-11-25"),
                                          ("MM/DD/CCYY", "11/25/26"),
                                          # Arabic-Indic and superscript digits are not digits
                                          ("CCYYMMDD", "\u0662\u0660\u0662\u0664\u0660\u0663\u0660\u0661"),
                                          ("auto", "2024030\u00b9"),
                                          ("MM/DD/CCYY", "\u0661/5/2027")])
def test_bad_dates(fmt, raw):
    with pytest.raises(TransformError):
        t.date(fmt)(raw)


@pytest.mark.parametrize(("fmt", "raw", "out"), [
    ("HHMM", "0930", "09:30"), ("HHMMSS", "170005", "17:00:05"), ("auto", "1700", "17:00"),
    ("auto", "17000512", "17:00:05.12"),
])
def test_times(fmt, raw, out):
    assert t.time(fmt)(raw) == out


@pytest.mark.parametrize("raw", ["2460", "2500", "930", "17:00", "abcd", "\u0661\u0667\u0660\u0660"])
def test_bad_times(raw):
    with pytest.raises(TransformError):
        t.time("auto")(raw)


@pytest.mark.parametrize(("places", "raw", "out"), [
    (2, "12345", "123.45"), (2, "5", "0.05"), (2, "-150", "-1.50"), (2, "12.5", "12.5"),
    (0, "0042", "42"), (3, "1000", "1.000"),
])
def test_implied_decimals(places, raw, out):
    assert t.implied_decimal(places)(raw) == out


@pytest.mark.parametrize(("raw", "out"), [
    ("048", "48"), ("48.50", "48.50"), ("+3", "3"), ("-0", "0"), (".5", "0.5"),
    ("1,234.5", "1234.5"), (7, "7"), (0.25, "0.25"), ("000", "0"),
])
def test_numbers(raw, out):
    assert t.number(raw) == out


@pytest.mark.parametrize("raw", ["1e5", "12a", "", "-", True, "\u0663", "4\u00b2", "1_000"])
def test_bad_numbers(raw):
    with pytest.raises(TransformError):
        t.number(raw)


def test_integer():
    assert t.integer("007") == 7
    assert t.integer("-12") == -12
    for bad in ("7.5", "\u00b2", "\u0663", "1_000", "\uff11"):
        with pytest.raises(TransformError):
            t.integer(bad)


def test_tables():
    codes = {"EA": "EA", "CS": "CA"}
    assert t.table(codes, "uom", strict=False)("CS") == "CA"
    assert t.table(codes, "uom", strict=False)("BX") == "BX"  # passes through
    assert t.table(codes, "uom", strict=False, unknown="other")("BX") == "other"
    with pytest.raises(TransformError, match="'BX' is not in table uom"):
        t.table(codes, "uom", strict=True)("BX")


def test_trim_upper_chain():
    fn = t.chain([t.trim, t.upper])
    assert fn("  ea ") == "EA"
    assert t.chain([]) is None
