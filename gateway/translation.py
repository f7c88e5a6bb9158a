"""Translate one input file into canonical events, as `edigw translate` does.

X12: validate, find the partner by the ISA sender (or use the one given), pick its mapping
for the set and version (the base mapping when it has none, or when the sender is not
configured), map, wrap in a CloudEvent with the X12 control numbers as id keys, and check
the schema. CSV and JSON: the named partner's mapping for that format.
Each transaction set or document succeeds or fails on its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canonical import envelope
from canonical.errors import ConfigError, MappingError, PermanentError, SchemaError
from gateway import partners as partners_mod
from gateway.mapping_tools import inputs
from mappings.language import load_mapping
from mappings.x12 import specs, validator


class TranslationFailed(PermanentError):
    """A document could not be translated."""

    def __init__(self, message: str, *, stage: str, where: str = "") -> None:
        super().__init__(message)
        self.stage = stage  # validation, mapping or schema
        self.where = where  # file, set and control numbers, or CSV/JSON document


@dataclass
class Translation:
    """The events made of one file and the documents that failed."""

    events: list[envelope.Event] = field(default_factory=list)
    failures: list[TranslationFailed] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sets that are not business documents


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def base_mapping(root: Path, set_id: str, version: str) -> Path:
    return root / "base" / f"{set_id}.{specs.base_version(version)[2:6]}.yaml"


def _validation_errors(path: Path) -> dict[str, list[str]]:
    """Rejected sets by x12control, each with its errors in words; raises if unreadable."""
    result = validator.validate(path)
    if not result.readable:
        raise inputs.UnreadableInput(f"{path}: cannot be read as X12: {result.read_error}")
    out: dict[str, list[str]] = {}
    for ic in result.interchanges:
        for g in ic.groups:
            for s in g.sets:
                if not s.accepted or not ic.accepted:
                    findings = [*ic.errors, *g.errors, *s.errors]
                    out[f"{ic.control_number}.{g.control_number}.{s.control_number}"] = [
                        f"[{f.code}] {_where(f)}{f.message}" for f in findings
                    ] or ["rejected"]
    return out


def _where(f: Any) -> str:
    parts = []
    if f.segment_position is not None:
        parts.append(f"segment {f.segment_position}")
    if f.segment_id:
        parts.append(f.segment_id)
    if f.element_position is not None:
        parts.append(f"element {f.element_position:02d}")
    if f.line is not None:
        parts.append(f"line {f.line}")
    return " ".join(parts) + ": " if parts else ""


def translate_x12(path: Path, *, partner: partners_mod.Partner | None,
                  registry: partners_mod.Partners, root: Path) -> Translation:
    out = Translation()
    rejected = _validation_errors(path)
    for s in inputs.x12_sets(path):
        where = f"{path}: {s.set_id} {s.control} (ST at line {s.segments[0].line})"
        if s.set_id in ("997", "999", "TA1"):
            out.skipped.append(f"{where}: an acknowledgment, not a business document")
            continue
        if s.control in rejected:
            out.failures.append(TranslationFailed(
                "rejected by validation: " + "; ".join(rejected[s.control]),
                stage="validation", where=where))
            continue
        who = partner or registry.find_by_sender(*s.sender)
        pid = who.id if who else _slug(f"x12-{s.sender[0]}-{s.sender[1]}")
        mapping = (who.mapping_for(s.set_id, specs.base_version(s.version)) if who else None) \
            or base_mapping(root, s.set_id, s.version)
        try:
            if not mapping.is_file():
                raise ConfigError(f"no mapping for {s.set_id} {s.version}: "
                                  f"{'partner ' + pid + ' has none and ' if who else ''}"
                                  f"{mapping} does not exist")
            m = load_mapping(mapping)
            data = m.map_x12(s.segments, m.x12_spec(s.set_id, s.version), component=s.component)
            out.events.append(envelope.make_event(
                str(m.event), data, partner=pid, keys=envelope.x12_keys(s.control),
                x12control=s.control))
        except SchemaError as exc:
            out.failures.append(TranslationFailed(str(exc), stage="schema", where=where))
        except (ConfigError, MappingError) as exc:
            out.failures.append(TranslationFailed(str(exc), stage="mapping", where=where))
    return out


def _pick(partner: partners_mod.Partner, fmt: str, document: str | None) -> Path:
    if document is not None:
        found = partner.mappings.get(document)
        if found is None:
            raise ConfigError(f"partner {partner.id} has no mapping for {document!r} "
                              f"(has: {', '.join(sorted(partner.mappings)) or 'none'})")
        return found
    fitting = [p for p in partner.mappings.values() if load_mapping(p).format == fmt]
    if len(fitting) != 1:
        what = "no" if not fitting else "more than one"
        raise ConfigError(f"partner {partner.id} has {what} {fmt} mapping; name one with "
                          f"--document ({', '.join(sorted(partner.mappings)) or 'none'})")
    return fitting[0]


def translate_document(path: Path, fmt: str, *, partner: partners_mod.Partner,
                       document: str | None = None) -> Translation:
    """A CSV upload or a JSON document of a named partner."""
    out = Translation()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
    try:
        mapping = _pick(partner, fmt, document)
        m = load_mapping(mapping)
        docs = inputs.map_file(m, path)
    except (ConfigError, MappingError) as exc:
        out.failures.append(TranslationFailed(str(exc), stage="mapping", where=str(path)))
        return out
    subject_key = envelope.SUBJECT_KEYS.get(str(m.event), "")
    for i, data in enumerate(docs, 1):
        key = str(data.get(subject_key) or i)
        where = f"{path}: document {i} ({subject_key or 'key'} {key})"
        try:
            # No control numbers here: the business key plus the file's digest, so the same
            # upload sent twice keeps its ids and a corrected upload gets new ones.
            out.events.append(envelope.make_event(
                str(m.event), data, partner=partner.id,
                keys={"document": key, "sha256": digest}))
        except SchemaError as exc:
            out.failures.append(TranslationFailed(str(exc), stage="schema", where=where))
    return out


def translate_path(path: Path, *, partner_id: str | None, registry: partners_mod.Partners,
                   root: Path, document: str | None = None) -> Translation:
    """Every event of one file; UnreadableInput when it cannot be read at all."""
    if not path.is_file():
        raise inputs.UnreadableInput(f"{path}: no such file")
    fmt = inputs.sniff(path)
    partner = registry.get(partner_id) if partner_id else None
    if fmt == "x12":
        return translate_x12(path, partner=partner, registry=registry, root=root)
    if partner is None:
        raise ConfigError(f"{path}: a {fmt.upper()} file says nothing of who sent it; "
                          "name the partner with --partner")
    return translate_document(path, fmt, partner=partner, document=document)
