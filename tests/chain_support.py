"""Helpers for the chain tests: the story's documents as canonical events, a store, a context."""

from __future__ import annotations

import copy
import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from canonical import envelope
from canonical.envelope import Event as CloudEvent
from gateway import partners as partners_mod
from gateway import settings as settings_mod
from gateway.pipeline.context import Context
from gateway.store import db, migrate
from mappings import translate
from tests.conftest import REPO

HERE = REPO / "tests" / "acceptance" / "chains"
STORY = ("globex-850-4010.edi", "globex-855-4010-cut.edi", "globex-856-4010.edi",
         "globex-810-5010.edi")
RECEIPT = json.loads((HERE / "receipt-GR-2026-0412.json").read_text("utf-8"))
PO = "4500012345"
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@functools.cache
def _translated() -> tuple[bytes, ...]:
    out = []
    for n, name in enumerate(STORY):
        [result] = list(translate.translate((HERE / name).read_bytes(), fmt="x12", mappings={},
                                            partner="globex", name=name,
                                            time=T0 + timedelta(hours=n)))
        assert result.event is not None, result.reason
        out.append(envelope.to_json(result.event))
    return tuple(out)


def story_events(po_number: str = PO) -> list[CloudEvent]:
    """The 850, 855, 856 and 810 of the story as globex's canonical events, an hour apart,
    for this PO number (mapped once, the PO number then put in)."""
    return [envelope.from_json(raw.replace(PO.encode(), po_number.encode()))
            for raw in _translated()]


def receipt(po_number: str = PO) -> dict[str, Any]:
    data = copy.deepcopy(RECEIPT)
    data["po_number"] = po_number
    data["receipt_number"] = f"GR-{po_number}"
    return data


def context(url: str, folder: Path | None = None) -> Context:
    """A context on a migrated store: the repository's partners, every event to a file."""
    migrate.upgrade(url)
    ((folder or Path(".")) / "erp").mkdir(parents=True, exist_ok=True)
    settings = settings_mod.parse({
        "destinations": {"erp": {"type": "file", "config": {
            "path": str((folder or Path(".")) / "erp" / "events.jsonl")}}},
        "routes": [{"name": "all", "match": {"type": "*", "partner": "*"}, "to": ["erp"]}],
    }, {}, None)
    partners = partners_mod.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings")
    return Context(settings, partners, db.make_engine(url))


def is_exception(env: dict[str, Any]) -> bool:
    return env["type"] == envelope.TYPE_PREFIX + "exception.v1"
