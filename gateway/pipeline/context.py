"""What every stage needs: settings, partners, the store engine and the open outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from canonical.errors import ConfigError
from channels import registry
from channels.base import Output
from gateway import partners as partners_mod
from gateway import settings as settings_mod
from gateway.store import db

# The work item kinds, shared with the dead-letter tooling: a dead letter's stage is one
# of them, and replaying it enqueues a new item of that kind.
KINDS = ("validate", "map", "route", "deliver", "ack")


@dataclass
class Context:
    """One process's view of the gateway; outputs are opened once and reused."""

    settings: settings_mod.Settings
    partners: partners_mod.Partners
    engine: Engine
    outputs: dict[str, Output] = field(default_factory=dict)

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

    def close(self) -> None:
        """Close the outputs and the engine's connections."""
        for out in self.outputs.values():
            out.close()
        self.outputs.clear()
        self.engine.dispose()
