"""Today's mapping of a stored payload, made without writing anything, for replay dry runs.

The same mappings.translate.translate the map stage calls, with the partner configuration
and mapping files as they are now (validating again: a dry run keeps nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from canonical.errors import GatewayError
from gateway import partners as partners_mod
from mappings import translate as translate_mod


@dataclass
class Remapped:
    """The events today's mappings make of one payload, and the documents that failed."""

    events: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Remapper:
    """Maps stored payloads with the partner configuration and mappings as they are now."""

    partners_dir: Path = Path("conf/partners")
    mappings_root: Path = translate_mod.MAPPING_DIR

    def remap(self, *, partner: str, source_name: str, data: bytes,
              time: datetime | None = None) -> Remapped:
        """The events of data as partner's mappings make them today (nothing is stored).

        time: the message's arrival, the time the map stage gives its events."""
        out = Remapped()
        try:
            registry = partners_mod.load_all(self.partners_dir, mappings_root=self.mappings_root)
            configured = registry.by_id.get(partner)
            refs = {k: str(v.resolve())
                    for k, v in (configured.mappings if configured else {}).items()}
            for r in translate_mod.translate(
                    data, mappings=refs, partner=partner, name=source_name, time=time,
                    mapping_dir=self.mappings_root,
                    accept_with_errors=configured.accept_with_errors if configured else ()):
                if r.event is not None:
                    out.events.append(r.event.to_dict())
                elif r.status != "skipped":
                    where = (f"set {r.set_id} {r.x12control}" if r.format == "x12"
                             else r.where)
                    out.failures.append(f"{where}: {r.reason}")
        except GatewayError as exc:
            out.failures.append(str(exc))
        return out
