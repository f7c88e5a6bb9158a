"""Purchase orders never seen before: hypothesis writes valid 850s (004010 and 005010) with
random PO numbers, line counts, units, prices and optional segments; each translates with
the base mapping into a schema-valid event that says what the file says."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical import schemas
from mappings.translate import translate

pytestmark = pytest.mark.conformance

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
UNITS = ["EA", "CA", "BX", "DZ", "PK", "LB", "PC", "CS"]
QUALIFIERS = ["BP", "VP", "VN", "UP", "EN", "UK", "SK", "IN", "MG", "ZZ"]

po_numbers = st.text(ALNUM + "-", min_size=1, max_size=22).filter(lambda s: s.strip("-"))
quantities = st.decimals(min_value=1, max_value=99999, places=0)
prices = st.decimals(min_value=0, max_value=9999, places=2)
ids = st.text(ALNUM, min_size=1, max_size=20)
names = st.text(ALNUM + " .", min_size=1, max_size=30).map(str.strip).filter(bool)
dates = st.dates(date(1990, 1, 1), date(2099, 12, 31)).map(lambda d: d.strftime("%Y%m%d"))


@st.composite
def lines(draw):
    qty = draw(quantities)
    price = draw(st.none() | prices)
    pairs = draw(st.lists(st.tuples(st.sampled_from(QUALIFIERS), ids), max_size=4))
    return {"qty": qty, "unit": draw(st.sampled_from(UNITS)), "price": price, "pairs": pairs,
            "number": draw(st.booleans()), "desc": draw(st.none() | names)}


@st.composite
def orders(draw):
    return {
        "version": draw(st.sampled_from(["004010", "005010", "004010VICS"])),
        "po": draw(po_numbers),
        "date": draw(dates),
        "cur": draw(st.booleans()),
        "refs": draw(st.lists(st.tuples(st.sampled_from(["DP", "IA", "VR"]), ids), max_size=3)),
        "dtms": draw(st.lists(st.tuples(st.sampled_from(["002", "010", "001", "938"]), dates),
                              max_size=3)),
        "parties": draw(st.lists(st.tuples(st.sampled_from(["BY", "ST", "BT", "SE", "ZZ"]), names,
                                           st.booleans()), max_size=3)),
        "lines": draw(st.lists(lines(), min_size=1, max_size=12)),
        "ctt": draw(st.booleans()),
    }


def x12(o: dict) -> bytes:
    body = ["ST*850*0001", f"BEG*00*SA*{o['po']}**{o['date']}"]
    if o["cur"]:
        body.append("CUR*BY*USD")
    body += [f"REF*{q}*{v}" for q, v in o["refs"]]
    body += [f"DTM*{q}*{d}" for q, d in o["dtms"]]
    for code, name, address in o["parties"]:
        body.append(f"N1*{code}*{name}*92*{len(body):02d}")
        if address:
            body += ["N3*1 Main St", "N4*Springfield*IL*62701*US"]
    for i, ln in enumerate(o["lines"], 1):
        pairs = "".join(f"*{q}*{v}" for q, v in ln["pairs"])
        price = f"*{ln['price']}*PE" if ln["price"] is not None else "**"
        body.append(f"PO1*{i if ln['number'] else ''}*{ln['qty']}*{ln['unit']}{price}{pairs}")
        if ln["desc"]:
            body.append(f"PID*F****{ln['desc']}")
    if o["ctt"]:
        body.append(f"CTT*{len(o['lines'])}")
    body.append(f"SE*{len(body) + 1}*0001")
    isa12 = "00501" if o["version"].startswith("005") else "00401"
    rep = "^" if isa12 == "00501" else "U"
    head = (f"ISA*00*          *00*          *ZZ*BUYER          *ZZ*SELLER         *240301*0930*"
            f"{rep}*{isa12}*000000001*0*P*>~GS*PO*BUYER*SELLER*20240301*0930*1*X*{o['version']}~")
    return (head + "~".join(body) + "~GE*1*1~IEA*1*000000001~").encode()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders())
def test_a_generated_850_translates_to_what_it_says(o: dict) -> None:
    (result,) = translate(x12(o), partner="generated")
    assert result.status == "translated", result.reason
    data = result.event.data
    assert schemas.validate("purchase_order", data) == []
    assert data["po_number"] == o["po"]
    assert result.event.subject == o["po"] == result.event.extensions["ponumber"]
    assert len(data["lines"]) == len(o["lines"])
    for i, (got, sent) in enumerate(zip(data["lines"], o["lines"], strict=True), 1):
        assert got["line_number"] == str(i)
        assert got["quantity"]["unit"] == sent["unit"]
        assert Decimal(got["quantity"]["value"]) == sent["qty"]
        if sent["price"] is None:
            assert "unit_price" not in got
        else:
            assert Decimal(got["unit_price"]["value"]) == sent["price"]
        assert [(i["qualifier"], i["id"]) for i in got.get("item_ids", [])] == sent["pairs"]
        assert got.get("description") == sent["desc"]
    assert len(data.get("references", [])) == len(o["refs"])
    assert len(data.get("parties", [])) == len(o["parties"])
