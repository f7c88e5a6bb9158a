"""Any standard document translates: every 850/855/856/810 set of the corpus that the
validator accepts becomes a schema-valid event with the base mapping (nearest version for
003xxx/004030/004060 groups), and its business key and line count are what the file holds.

The expected values are read straight from the segments here (BEG03, BAK03, BSN02, BIG02,
PO1/IT1 segments, HL item levels), not from the mapping's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from canonical import envelope, schemas
from canonical.errors import X12ReadError
from mappings.translate import translate
from mappings.x12 import validator
from mappings.x12.reader import X12Reader
from tests.conftest import X12_CORPUS

pytestmark = pytest.mark.conformance

SETS = ("850", "855", "856", "810")
KEY = {"850": ("BEG", 3), "855": ("BAK", 3), "856": ("BSN", 2), "810": ("BIG", 2)}
LINE = {"850": "PO1", "855": "PO1", "810": "IT1"}


@dataclass
class Raw:
    """What one transaction set holds, counted from its segments."""

    set_id: str
    control: str
    key: str = ""
    lines: int = 0  # PO1 / IT1 segments; HL item levels for the 856
    po_numbers: list[str] = field(default_factory=list)  # 856: PRF01 of every level


def raw_sets(path: Path) -> list[Raw]:
    out: list[Raw] = []
    isa13 = gs06 = ""
    current: Raw | None = None
    with X12Reader(path) as reader:
        for seg in reader:
            sid = seg.fields[0]
            if sid == "ISA":
                isa13, gs06 = seg.get(13), ""
            elif sid == "GS":
                gs06 = seg.get(6)
            elif sid == "ST":
                current = Raw(seg.get(1), f"{isa13}.{gs06}.{seg.get(2)}")
                out.append(current)
            elif current is None:
                continue
            elif sid == "SE":
                current = None
            elif KEY.get(current.set_id, ("",))[0] == sid and not current.key:
                current.key = seg.get(KEY[current.set_id][1])
            elif sid == LINE.get(current.set_id) or (
                    current.set_id == "856" and sid == "HL" and seg.get(3) == "I"):
                current.lines += 1
            elif current.set_id == "856" and sid == "PRF":
                current.po_numbers.append(seg.get(1))
    return out


def corpus_files() -> list[Path]:
    if not X12_CORPUS.is_dir():
        return []
    files = [p for d in (*SETS, "invalid") for p in sorted((X12_CORPUS / d).glob("*.edi"))]
    out = []
    for p in files:
        try:
            if any(r.set_id in SETS for r in raw_sets(p)):
                out.append(p)
        except X12ReadError:
            continue  # not X12 at all: nothing to translate
    return out


FILES = corpus_files()


def _shipped_items(data: dict) -> int:
    def in_packs(packs: list[dict]) -> int:
        return sum(len(p.get("items") or []) + in_packs(p.get("packs") or []) for p in packs)
    return sum(len(o.get("items") or []) + in_packs(o.get("packs") or [])
               for o in data.get("orders") or [])


def test_the_corpus_is_there():
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_corpus_file_translates(path: Path) -> None:
    raws = raw_sets(path)
    verdict = validator.validate(path)
    accepted = [s.accepted and ic.accepted for ic in verdict.interchanges
                for g in ic.groups for s in g.sets]
    results = list(translate(path, fmt="x12", partner="corpus"))
    assert len(results) == len(raws) == len(accepted)
    for raw, ok, result in zip(raws, accepted, results, strict=True):
        assert (result.set_id, result.x12control) == (raw.set_id, raw.control)
        if not ok:
            assert result.status == "rejected" and result.reason and result.event is None
            continue
        assert result.status == "translated", result.reason
        event = result.event
        assert event is not None
        assert schemas.validate(event.event_type, event.data) == []
        assert envelope.from_json(envelope.to_json(event)) == event
        assert event.id == envelope.event_id("corpus", event.event_type,
                                             envelope.x12_keys(raw.control))
        assert event.extensions["x12control"] == raw.control
        data = event.data
        if raw.set_id == "856":
            assert data["shipment_id"] == raw.key
            assert _shipped_items(data) == raw.lines
            assert [o["po_number"] for o in data.get("orders") or []] == raw.po_numbers
        else:
            key = "invoice_number" if raw.set_id == "810" else "po_number"
            assert data[key] == raw.key
            assert event.subject == raw.key
            assert len(data["lines"]) == raw.lines
