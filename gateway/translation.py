"""Translate one input file into canonical events, as `edigw translate` does.

X12: find the partner by the ISA sender (or use the one given) and hand the file to
mappings.translate with that partner's mappings (it validates, picks the partner's or the
base mapping per set and version, maps, wraps in a CloudEvent keyed by the control numbers
and checks the schema). A sender that is not configured gets the base mappings. CSV and JSON: the named partner's mapping for that format.
Each transaction set or document succeeds or fails on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from canonical import envelope
from canonical.errors import ConfigError, MappingError, PermanentError, SchemaError, X12ReadError
from gateway import partners as partners_mod
from gateway.mapping_tools import inputs
from mappings import translate as x12_translate
from mappings.language import load_mapping
from mappings.x12 import outline as x12_envelope
from mappings.x12 import specs


class TranslationFailed(PermanentError):
    """A document could not be translated."""

    def __init__(self, message: str, *, stage: str, where: str = "") -> None:
        super().__init__(message)
        self.stage = stage  # validation, mapping or schema
        self.where = where  # file, set and control numbers, or CSV/JSON document


OnEvent = Callable[[envelope.Event], None]


@dataclass
class Translation:
    """The events made of one file and the documents that failed."""

    events: list[envelope.Event] = field(default_factory=list)
    failures: list[TranslationFailed] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sets that are not business documents


def base_mapping(root: Path, set_id: str, version: str) -> Path:
    return root / "base" / f"{set_id}.{specs.base_version(version)[2:6]}.yaml"


def _sender_partner(path: Path, registry: partners_mod.Partners) -> partners_mod.Partner | None:
    """The configured partner of the file's ISA sender (None when not configured)."""
    try:
        senders = {(ic.sender_qualifier, ic.sender_id) for ic in x12_envelope.scan(path)}
    except X12ReadError as exc:
        raise inputs.UnreadableInput(f"{path}: cannot be read as X12: {exc}") from exc
    found = [registry.find_by_sender(*s) for s in sorted(senders)]
    if len({p.id if p else None for p in found}) > 1:
        names = ", ".join(sorted(f"{q}:{i}" for q, i in senders))
        raise ConfigError(f"{path}: interchanges from several senders ({names}); "
                          "translate them one partner at a time with --partner")
    return found[0] if found else None


def translate_x12(path: Path, *, partner: partners_mod.Partner | None,
                  registry: partners_mod.Partners, root: Path,
                  on_event: OnEvent | None = None) -> Translation:
    """Through mappings.translate (validate, map, wrap, check), with the partner's mappings.

    on_event: called with each event as its set is translated, instead of keeping the
    events (a large file then streams set by set)."""
    who = partner or _sender_partner(path, registry)
    refs = {k: str(v.resolve()) for k, v in (who.mappings if who else {}).items()}
    out = Translation()
    keep = on_event or out.events.append
    try:
        for r in x12_translate.iter_translate_x12(
                path, partner=who.id if who else None, mapping_dir=root, partners=refs,
                accept_with_errors=who.accept_with_errors if who else ()):
            _note(out, keep, path, r)
    except X12ReadError as exc:
        raise inputs.UnreadableInput(str(exc)) from exc
    return out


def _note(out: Translation, keep: OnEvent, path: Path, r: x12_translate.TranslationResult) -> None:
    where = f"{path}: {r.set_id} {r.x12control} (ST at line {r.line})"
    if r.status == "translated" and r.event is not None:
        keep(r.event)
    elif r.status == "skipped":
        out.skipped.append(f"{where}: {r.reason}")
    else:
        stage = ("validation" if r.status == "rejected"
                 else "schema" if isinstance(r.error, SchemaError) else "mapping")
        out.failures.append(TranslationFailed(str(r.error or r.reason), stage=stage,
                                              where=where))


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
                   root: Path, document: str | None = None,
                   on_event: OnEvent | None = None) -> Translation:
    """Every event of one file; UnreadableInput when it cannot be read at all.

    on_event: see translate_x12 (CSV and JSON documents are small: kept, then handed over)."""
    if not path.is_file():
        raise inputs.UnreadableInput(f"{path}: no such file")
    fmt = inputs.sniff(path)
    partner = registry.get(partner_id) if partner_id else None
    if fmt == "x12":
        return translate_x12(path, partner=partner, registry=registry, root=root,
                             on_event=on_event)
    if partner is None:
        raise ConfigError(f"{path}: a {fmt.upper()} file says nothing of who sent it; "
                          "name the partner with --partner")
    out = translate_document(path, fmt, partner=partner, document=document)
    if on_event is not None:
        for e in out.events:
            on_event(e)
        out.events = []
    return out
