"""Today's mapping of a stored payload, made without writing anything, for replay dry runs."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canonical.errors import GatewayError
from gateway import partners as partners_mod
from gateway import translation
from mappings import translate as x12_translate


@dataclass
class Remapped:
    """The events today's mappings make of one payload, and the documents that failed."""

    events: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Remapper:
    """Maps stored payloads with the partner configuration and mappings as they are now."""

    partners_dir: Path = Path("conf/partners")
    mappings_root: Path = x12_translate.MAPPING_DIR

    def remap(self, *, partner: str, source_name: str, data: bytes) -> Remapped:
        """The events of data as partner's mappings make them today (nothing is stored)."""
        out = Remapped()
        try:
            registry = partners_mod.load_all(self.partners_dir, mappings_root=self.mappings_root)
            configured = registry.by_id.get(partner)
            if data.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"ISA"):
                self._x12(out, partner, configured, data)
            else:
                self._document(out, configured, partner, source_name, data)
        except GatewayError as exc:
            out.failures.append(str(exc))
        return out

    def _x12(self, out: Remapped, partner: str, configured: partners_mod.Partner | None,
             data: bytes) -> None:
        refs = {k: str(v.resolve()) for k, v in (configured.mappings if configured else {}).items()}
        for r in x12_translate.translate_x12(data, partner=partner,
                                             mapping_dir=self.mappings_root, partners=refs):
            if r.event is not None:
                out.events.append(r.event.to_dict())
            elif r.status != "skipped":
                out.failures.append(f"set {r.set_id} {r.x12control}: {r.reason}")

    def _document(self, out: Remapped, configured: partners_mod.Partner | None, partner: str,
                  source_name: str, data: bytes) -> None:
        if configured is None:
            out.failures.append(f"partner {partner!r} is not configured; a CSV or JSON "
                                "document needs its mapping")
            return
        suffix = Path(source_name).suffix.lower()
        fmt = "json" if suffix == ".json" or data.lstrip()[:1] in (b"{", b"[") else "csv"
        # The readers take files; a private temporary one is not a write to the store.
        with tempfile.TemporaryDirectory(prefix="edigw-dry-run-") as tmp:
            path = Path(tmp) / f"input.{fmt}"
            path.write_bytes(data)
            done = translation.translate_document(path, fmt, partner=configured)
        out.events.extend(e.to_dict() for e in done.events)
        out.failures.extend(str(f) for f in done.failures)
