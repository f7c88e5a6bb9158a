"""Translate one input file into canonical events, as `edigw translate` does.

Everything goes through mappings.translate.translate, the same call the pipeline's stages
and the dead-letter dry run make. X12: the partner is the one of the ISA sender (or the
one given), whose mappings are used set by set and version by version; a sender that is
not configured gets the base mappings. CSV and JSON: the named partner's mapping for that
format. Each transaction set or document succeeds or fails on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from canonical import envelope
from canonical.errors import ConfigError, InputError, PermanentError, SchemaError, X12ReadError
from gateway import partners as partners_mod
from gateway.mapping_tools import inputs
from mappings import translate as translate_mod
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


def _note(out: Translation, keep: OnEvent, path: Path, r: translate_mod.Translated) -> None:
    where = f"{path}: {r.where}" if r.format == "x12" else r.where
    if r.status == "translated" and r.event is not None:
        keep(r.event)
    elif r.status == "skipped":
        out.skipped.append(f"{where}: {r.reason}")
    else:
        stage = ("validation" if r.status == "rejected"
                 else "schema" if isinstance(r.error, SchemaError) else "mapping")
        out.failures.append(TranslationFailed(str(r.error or r.reason), stage=stage,
                                              where=where))


def translate_path(path: Path, *, partner_id: str | None, registry: partners_mod.Partners,
                   root: Path, document: str | None = None,
                   on_event: OnEvent | None = None) -> Translation:
    """Every event of one file; UnreadableInput when it cannot be read at all.

    on_event: called with each event as its set or document is translated, instead of
    keeping the events (a large X12 file then streams set by set)."""
    if not path.is_file():
        raise inputs.UnreadableInput(f"{path}: no such file")
    partner = registry.get(partner_id) if partner_id else None
    refs = {k: str(v.resolve()) for k, v in (partner.mappings if partner else {}).items()}
    if document is not None:
        fmt = _format_of(partner, document, root)
    else:
        try:
            with path.open("rb") as f:
                head = f.read(512)
        except OSError as exc:
            raise inputs.UnreadableInput(f"{path}: cannot read: {exc.strerror or exc}") from exc
        # Without a partner, the file's suffix says what it is meant to be.
        sends = translate_mod.formats(refs, root) or (
            {path.suffix.lower().lstrip(".")} & {"csv", "json"})
        fmt = translate_mod.detect(head, sends)
    if fmt == "x12" and partner is None:
        partner = _sender_partner(path, registry)
        refs = {k: str(v.resolve()) for k, v in (partner.mappings if partner else {}).items()}
    elif fmt != "x12" and partner is None:
        raise ConfigError(f"{path}: a {fmt.upper()} file says nothing of who sent it; "
                          "name the partner with --partner")
    out = Translation()
    keep = on_event or out.events.append
    try:
        for r in translate_mod.translate(
                path, fmt=fmt, mappings=refs, partner=partner.id if partner else None,
                name=str(path), mapping_dir=root, document=document,
                accept_with_errors=partner.accept_with_errors if partner else ()):
            _note(out, keep, path, r)
    except X12ReadError as exc:
        raise inputs.UnreadableInput(str(exc)) from exc
    except (InputError, ConfigError) as exc:
        if fmt == "x12" or isinstance(exc, InputError):
            raise inputs.UnreadableInput(str(exc)) from exc
        # No usable mapping for the document: that document failed, as before.
        out.failures.append(TranslationFailed(str(exc), stage="mapping", where=str(path)))
    return out


def _format_of(partner: partners_mod.Partner | None, document: str, root: Path) -> str:
    """The format of the mapping --document names."""
    if partner is None:
        raise ConfigError("--document names one of a partner's mappings: give --partner too")
    ref = partner.mappings.get(document)
    if ref is None:
        raise ConfigError(f"partner {partner.id} has no mapping for {document!r} "
                          f"(has: {', '.join(sorted(partner.mappings)) or 'none'})")
    found = translate_mod.formats({document: str(ref.resolve())}, root)
    if not found:
        raise ConfigError(f"{ref}: the mapping cannot be loaded (edigw mapping check {ref})")
    return found.pop()
