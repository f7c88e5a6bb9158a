"""Reference lists a mapping's code tables are checked against: canonical enums and our units."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

UNITS_FILE = Path(__file__).resolve().parent / "units.txt"


@functools.cache
def units() -> frozenset[str]:
    """Our units of measure (units.txt)."""
    lines = UNITS_FILE.read_text("utf-8").splitlines()
    return frozenset(ln.split()[0] for ln in lines if ln.strip() and not ln.startswith("#"))


@functools.cache
def _schemas_by_id() -> dict[str, dict[str, Any]]:
    out = {}
    for entry in resources.files("canonical").joinpath("schemas").iterdir():
        if entry.name.endswith(".json"):
            doc = json.loads(entry.read_text("utf-8"))
            out[doc["$id"]] = doc
    return out


def _deref(node: dict[str, Any], doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    while "$ref" in node:
        ref = node["$ref"]
        uri, _, pointer = ref.partition("#")
        if uri:
            doc = _schemas_by_id()[urljoin(doc["$id"], uri)]
        node = doc
        for step in [p for p in pointer.split("/") if p]:
            node = node[step]
    return node, doc


def enum_at(event: str, path: tuple[str, ...]) -> list[str] | None:
    """The enum the canonical schema puts on an output path (`[]` steps into a list), if any."""
    from canonical import schemas

    try:
        doc = schemas.schema(event)
    except Exception:  # an unknown event type is reported by the schema check of the output
        return None
    node: dict[str, Any] = doc
    for step in path:
        node, doc = _deref(node, doc)
        if step == "[]":
            node = node.get("items") or {}
        else:
            node = (node.get("properties") or {}).get(step) or {}
        if not node:
            return None
    node, doc = _deref(node, doc)
    enum = node.get("enum")
    return list(enum) if isinstance(enum, list) else None
