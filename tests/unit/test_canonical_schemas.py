"""The canonical JSON Schemas accept good documents and name the path of every fault."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import jsonschema
import pytest

from canonical import errors, schemas

pytestmark = pytest.mark.unit

EVENT_TYPES = ["invoice", "po_acknowledgment", "purchase_order", "ship_notice"]

# The least each event type accepts: its required keys and nothing else.
MINIMAL: dict[str, dict[str, Any]] = {
    "purchase_order": {
        "po_number": "PO1",
        "lines": [{"line_number": "1", "quantity": {"value": "1", "unit": "EA"}}],
    },
    "po_acknowledgment": {"po_number": "PO1", "lines": []},
    "ship_notice": {"shipment_id": "SH1"},
    "invoice": {
        "invoice_number": "INV1",
        "lines": [{"line_number": "1", "quantity": {"value": "1", "unit": "EA"}}],
    },
}

REQUIRED = [
    ("purchase_order", "po_number"),
    ("purchase_order", "lines"),
    ("po_acknowledgment", "po_number"),
    ("po_acknowledgment", "lines"),
    ("ship_notice", "shipment_id"),
    ("invoice", "invoice_number"),
    ("invoice", "lines"),
]

# The SSCC printed in GS1's General Specifications, so the check digit rule is checked against theirs.
VALID_SSCC = "106141411234567897"


def example_data(event_type: str) -> dict[str, Any]:
    """The data of the shipped example event of a type."""
    path = resources.files("canonical").joinpath("examples", f"{event_type}.json")
    return json.loads(path.read_text("utf-8"))["data"]


def paths(event_type: str, data: dict[str, Any]) -> list[str]:
    return [v.path for v in schemas.validate(event_type, data)]


def test_event_types_are_the_four_documents_and_the_chains_two() -> None:
    # exception and goods_receipt belong to PO chains (tests/unit/test_chain_store.py).
    assert schemas.event_types() == sorted([*EVENT_TYPES, "exception", "goods_receipt"])
    assert all(schemas.versions(t) == [1] for t in schemas.event_types())


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_minimal_document_passes(event_type: str) -> None:
    assert schemas.validate(event_type, MINIMAL[event_type]) == []


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_full_example_passes(event_type: str) -> None:
    assert schemas.validate(event_type, example_data(event_type)) == []


@pytest.mark.parametrize(("event_type", "key"), REQUIRED)
def test_missing_required_key_is_named(event_type: str, key: str) -> None:
    data = copy.deepcopy(MINIMAL[event_type])
    del data[key]
    [violation] = schemas.validate(event_type, data)
    assert violation.path == key
    assert violation.message == "is required"


def test_missing_nested_key_names_its_full_path() -> None:
    data = example_data("purchase_order")
    del data["lines"][1]["quantity"]["unit"]
    assert paths("purchase_order", data) == ["lines[1].quantity.unit"]


@pytest.mark.parametrize(
    ("where", "typo"),
    [
        ((), "po_numbr"),
        (("lines", 0), "quantitty"),
        (("lines", 0, "quantity"), "uom"),
        (("parties", 2, "address"), "zip"),
    ],
)
def test_unknown_property_is_named(where: tuple[str | int, ...], typo: str) -> None:
    data = example_data("purchase_order")
    node: Any = data
    for part in where:
        node = node[part]
    node[typo] = "x"
    [violation] = schemas.validate("purchase_order", data)
    assert violation.path == schemas.render_path((*where, typo))
    assert "extensions" in violation.message


def test_extensions_take_anything() -> None:
    data = example_data("purchase_order")
    data["extensions"] = {"any": {"nested": [1, 2.5, None]}}
    data["lines"][0]["extensions"] = {"display": "ENDCAP"}
    assert schemas.validate("purchase_order", data) == []


def test_violations_are_sorted_by_document_position() -> None:
    data = copy.deepcopy(MINIMAL["purchase_order"])
    line = data["lines"][0]
    data["lines"] = [copy.deepcopy(line) for _ in range(12)]
    data["lines"][10]["quantity"]["value"] = "ten"
    data["lines"][2]["quantity"]["value"] = "two"
    assert paths("purchase_order", data) == ["lines[2].quantity.value", "lines[10].quantity.value"]


@pytest.mark.parametrize("good", ["0", "12", "12.50", "-3", "0.125", "1000000.0001"])
def test_decimal_strings_accepted(good: str) -> None:
    data = copy.deepcopy(MINIMAL["purchase_order"])
    data["lines"][0]["quantity"]["value"] = good
    assert paths("purchase_order", data) == []


@pytest.mark.parametrize("bad", [12, 12.5, "012", "1e3", "+1", "1,000", "1.", ".5", " 1", ""])
def test_numbers_and_sloppy_decimals_rejected(bad: object) -> None:
    data = copy.deepcopy(MINIMAL["purchase_order"])
    data["lines"][0]["quantity"]["value"] = bad
    assert paths("purchase_order", data) == ["lines[0].quantity.value"]


def ship_notice_with_pack(sscc: object) -> dict[str, Any]:
    return {"shipment_id": "SH1", "orders": [{"po_number": "PO1", "packs": [{"sscc18": sscc}]}]}


def test_valid_sscc18_passes() -> None:
    assert paths("ship_notice", ship_notice_with_pack(VALID_SSCC)) == []


@pytest.mark.parametrize(
    "bad",
    ["00614141000000001", "0061414100000000145", "00614141000000001A", "(00)106141411234567897", 106141411234567897],
)
def test_sscc18_must_be_18_digits(bad: object) -> None:
    assert paths("ship_notice", ship_notice_with_pack(bad)) == ["orders[0].packs[0].sscc18"]


def test_sscc18_check_digit_is_checked() -> None:
    [violation] = schemas.validate("ship_notice", ship_notice_with_pack("106141411234567898"))
    assert violation.path == "orders[0].packs[0].sscc18"
    assert "sscc18" in violation.message


def test_tare_packs_nest_and_items_sit_under_orders() -> None:
    data = example_data("ship_notice")
    tare = data["orders"][0]["packs"][0]
    assert tare["level"] == "tare" and tare["packs"][0]["items"]
    assert data["orders"][1]["items"]
    tare["packs"][1]["sscc18"] = "1"
    assert paths("ship_notice", data) == ["orders[0].packs[0].packs[1].sscc18"]


@pytest.mark.parametrize(
    ("kind", "item_id", "ok"),
    [
        ("upc", "012345678905", True),
        ("upc", "12345678905", False),
        ("ean", "4006381333931", True),
        ("ean", "400638133393", False),
        ("gtin", "10012345678902", True),
        ("gtin", "1001234567890X", False),
        ("buyer_part", "any thing-1", True),
    ],
)
def test_item_id_patterns(kind: str, item_id: str, ok: bool) -> None:
    data = copy.deepcopy(MINIMAL["purchase_order"])
    data["lines"][0]["item_ids"] = [{"kind": kind, "id": item_id}]
    assert paths("purchase_order", data) == ([] if ok else ["lines[0].item_ids[0].id"])


def test_other_needs_the_source_code() -> None:
    data = copy.deepcopy(MINIMAL["purchase_order"])
    data["lines"][0]["item_ids"] = [{"kind": "other", "id": "X"}]
    data["parties"] = [{"role": "other"}]
    data["dates"] = [{"kind": "other", "date": "2024-03-01"}]
    assert paths("purchase_order", data) == [
        "dates[0].qualifier", "lines[0].item_ids[0].qualifier", "parties[0].role_code",
    ]


def test_dates_and_currency_are_checked() -> None:
    data = copy.deepcopy(MINIMAL["invoice"])
    data.update(invoice_date="2024-02-30", currency="usd")
    data["dates"] = [{"kind": "ship", "date": "20240301", "time": "25:00"}]
    # 20240301 breaks both the pattern and the format: two messages, one path.
    assert sorted(set(paths("invoice", data))) == [
        "currency", "dates[0].date", "dates[0].time", "invoice_date",
    ]


def test_check_raises_schema_error_with_every_violation() -> None:
    data = {"lines": [{"line_number": "1", "quantity": {"value": 3, "unit": "EA"}}], "po_numbr": "x"}
    with pytest.raises(errors.SchemaError) as caught:
        schemas.check("purchase_order", data)
    assert isinstance(caught.value, errors.PermanentError)
    assert [v.path for v in caught.value.violations] == [
        "lines[0].quantity.value", "po_number", "po_numbr",
    ]
    assert "lines[0].quantity.value" in str(caught.value)


def test_check_passes_silently() -> None:
    schemas.check("ship_notice", MINIMAL["ship_notice"])


def test_unknown_event_type() -> None:
    with pytest.raises(errors.UnknownEventType, match=r"purchase_order\.v1"):
        schemas.validate("purchase_orders", {})
    with pytest.raises(errors.UnknownEventType):
        schemas.validate("purchase_order", {}, version=2)
    with pytest.raises(errors.UnknownEventType):
        schemas.validate("common", {})


@pytest.mark.parametrize(
    ("location", "path"),
    [((), "$"), (("lines", 3, "quantity", "value"), "lines[3].quantity.value"),
     (("extensions", "a.b"), 'extensions["a.b"]')],
)
def test_render_path(location: tuple[str | int, ...], path: str) -> None:
    assert schemas.render_path(location) == path


def _properties(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property schema in a schema document, with where it is."""
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{where}.{name}", sub
        for key, sub in node.items():
            yield from _properties(sub, f"{where}.{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _properties(sub, f"{where}[{i}]")


@pytest.mark.parametrize("name", [*EVENT_TYPES, "common", "cloudevent"])
def test_every_schema_is_documented(name: str) -> None:
    document = json.loads(
        resources.files("canonical").joinpath("schemas", f"{name}.v1.json").read_text("utf-8")
    )
    assert document["$id"] == f"https://schemas.edi-gateway.dev/canonical/{name}.v1.json"
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["title"] and document["description"]
    undocumented = [where for where, sub in _properties(document, name)
                    if "description" not in sub and "then" not in where and "if" not in where]
    assert undocumented == []


@pytest.mark.parametrize("name", [*EVENT_TYPES, "common"])
def test_every_object_is_closed_except_extensions(name: str) -> None:
    document = json.loads(
        resources.files("canonical").joinpath("schemas", f"{name}.v1.json").read_text("utf-8")
    )

    def open_objects(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("type") == "object" and "additionalProperties" not in node:
                yield where
            for key, sub in node.items():
                yield from open_objects(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                yield from open_objects(sub, f"{where}[{i}]")

    assert [w for w in open_objects(document, name) if not w.endswith("extensions")] == []


@pytest.mark.parametrize("name", [*EVENT_TYPES, "common", "cloudevent"])
def test_schema_is_valid_and_every_ref_resolves(name: str) -> None:
    document = schemas._schemas()[(name, 1)]
    jsonschema.Draft202012Validator.check_schema(document)
    resolver = schemas._registry().resolver(base_uri=document["$id"])

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for sub in node.values():
                yield from refs(sub)
        elif isinstance(node, list):
            for sub in node:
                yield from refs(sub)

    for ref in refs(document):
        assert resolver.lookup(ref).contents, ref  # a typo raises here, not in production


def test_date_time_format_is_really_checked():
    """jsonschema skips a format silently when its checker library is missing."""
    from jsonschema import FormatChecker

    assert "date-time" in FormatChecker().checkers
    assert not FormatChecker().conforms("2026-13-45T99:00:00Z", "date-time")
