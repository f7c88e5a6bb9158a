"""What every stage needs: settings, partners, the store engine and the open outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.engine import Engine

from canonical.errors import ConfigError
from channels import registry
from channels.base import Output
from gateway import partners as partners_mod
from gateway import settings as settings_mod
from gateway.pipeline import receipts
from gateway.pipeline.receipts import Journal
from gateway.store import db

# The work item kinds, shared with the dead-letter tooling: a dead letter's stage is one
# of them, and replaying it enqueues a new item of that kind.
KINDS = ("validate", "map", "route", "deliver", "ack", "send")


class RemoteOutbox(Protocol):
    """A partner channel that can put a file in the partner's outbox (channels.sftp)."""

    def put(self, name: str, data: bytes) -> str: ...
    def close(self) -> None: ...


@dataclass
class Context:
    """One process's view of the gateway; outputs are opened once and reused."""

    settings: settings_mod.Settings
    partners: partners_mod.Partners
    engine: Engine
    outputs: dict[str, Output] = field(default_factory=dict)
    # Partners' remote outboxes (None: the local outbox folder), built on first use; each
    # connects when it first puts a file, and stays connected for the next.
    remote_outboxes: dict[str, RemoteOutbox | None] = field(default_factory=dict)
    _receipts: Journal | None = None

    @property
    def receipts(self) -> Journal:
        """This process's journal of receipts not yet recorded (see pipeline.receipts)."""
        if self._receipts is None:
            self._receipts = Journal(receipts.folder_for(self.engine.url,
                                                         self.settings.workers.receipts))
        return self._receipts

    @classmethod
    def load(cls, config: str | None = None, *, store_url: str | None = None) -> Context:
        """The context of the configuration file (or the embedded default)."""
        settings = settings_mod.load(config)
        registry_ = partners_mod.load_all(settings.partners_folder,
                                          mappings_root=settings.mappings_root)
        return cls(settings, registry_, db.make_engine(store_url or settings.store_url))

    def output(self, destination: str) -> Output:
        """The open output of a destination by name."""
        out = self.outputs.get(destination)
        if out is None:
            dest = self.settings.destinations.get(destination)
            if dest is None:
                raise ConfigError(f"no destination {destination!r} in the configuration")
            out = registry.build_output(dest.type, dest.config, name=destination)
            self.outputs[destination] = out
        return out

    def remote_outbox(self, partner: str) -> RemoteOutbox | None:
        """The channel whose outbox takes the partner's acknowledgments, if one declares one."""
        if partner not in self.remote_outboxes:
            found = None
            p = self.partners.by_id.get(partner)
            for kind, settings in (p.channels.items() if p else ()):
                if getattr(settings, "outbox", None):
                    built = registry.build_input(kind, settings, partner=partner)
                    if hasattr(built, "put"):
                        found = built  # type: ignore[assignment]
                        break
            self.remote_outboxes[partner] = found
        return self.remote_outboxes[partner]

    def close(self) -> None:
        """Close the outputs, the remote outboxes and the engine's connections."""
        for out in self.outputs.values():
            out.close()
        self.outputs.clear()
        for box in self.remote_outboxes.values():
            if box is not None:
                box.close()
        self.remote_outboxes.clear()
        if self._receipts is not None:
            self._receipts.close()
            self._receipts = None
        self.engine.dispose()
