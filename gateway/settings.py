"""conf/gateway.yaml: store, inbound folders, acks, HTTP, destinations, routes and workers, checked at load.

Every error names the file, the line and the key (`conf/gateway.yaml:12: destinations.erp.config.
path: ...`), using the mapping language's line-keeping YAML reader. Every key has a default,
so a missing file means the embedded default: SQLite and folders under ./var/.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from canonical.errors import ConfigError, MappingFileError
from channels import config as channel_config
from channels import registry
from mappings.language import yaml_source
from retry.policy import RetryPolicy

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "gateway.schema.json"
DEFAULT_FILE = Path("conf/gateway.yaml")
DEFAULT_DESTINATIONS = {"erp": {"type": "file", "config": {"path": "var/erp/events.jsonl"}}}
DEFAULT_ROUTES = [{"name": "everything-to-erp", "match": {}, "to": ["erp"]}]


class SettingsError(ConfigError):
    """The gateway configuration is invalid."""

    def __init__(self, message: str | None = None, *, file: str | None = None,
                 line: int | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.file, self.line, self.key = file, line, key


@dataclass(frozen=True)
class Destination:
    """A named output: its kind, its checked settings and its retry policy."""

    name: str
    type: str
    config: dict[str, Any]
    retry: RetryPolicy


@dataclass(frozen=True)
class Condition:
    """A test on one dotted field of the event: one of equals, not_equals, in, exists."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Route:
    """Events whose type and partner match (and whose condition holds) go to `to`."""

    name: str
    type: str
    partner: str
    when: Condition | None
    to: tuple[str, ...]


@dataclass(frozen=True)
class Workers:
    """How workers claim: lease, heartbeat, claims before an item is parked."""

    count: int = 1
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    max_claims: int = 3
    idle_sleep: float = 0.5
    stage_retries: int = 5
    batch: int = 50
    receipts: str | None = None  # a folder; None: see gateway/pipeline/receipts.folder_for


@dataclass(frozen=True)
class Settings:
    """The whole gateway configuration."""

    file: str | None
    store_url: str = "sqlite:///var/edigw.db"
    partners_folder: Path = Path("conf/partners")
    mappings_root: Path = Path("mappings")
    inbox_enabled: bool = True
    inbox_root: Path = Path("var/inbox")
    poll_interval: float = 1.0
    stable_for: float = 2.0
    receive_batch: int = 100
    outbox_root: Path = Path("var/outbox")
    max_input_bytes: int = 104_857_600
    http_listen: str = "127.0.0.1:8080"
    http_enabled: bool = True
    destinations: dict[str, Destination] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    workers: Workers = field(default_factory=Workers)


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text("utf-8")))


def _error(marks: yaml_source.Marks, path: tuple[str | int, ...], message: str,
           file: str) -> SettingsError:
    where, line = yaml_source.mark_of(marks, path)
    key = yaml_source.key_text(path)
    return SettingsError(f"{where or file}:{line}: {key}: {message}", file=where or file,
                         line=line, key=key)


def load(path: str | Path | None = None) -> Settings:
    """The settings in path; without one, conf/gateway.yaml if present, else the defaults."""
    if path is None:
        if not DEFAULT_FILE.is_file():
            return parse({}, {}, None)
        path = DEFAULT_FILE
    file = str(path)
    if not Path(path).is_file():
        raise SettingsError(f"{file}: no such file", file=file)
    try:
        data, marks = yaml_source.load(path)
    except MappingFileError as exc:  # the YAML reader speaks of mapping files; same message
        raise SettingsError(str(exc), file=exc.file, line=exc.line) from exc
    return parse(data if data is not None else {}, marks, file)


def parse(data: Any, marks: yaml_source.Marks, file: str | None) -> Settings:
    """Check parsed YAML against the schema and the channel config models into Settings."""
    name = file or "<defaults>"
    problems = sorted((_schema_error(e, marks, name) for e in _validator().iter_errors(data)),
                      key=lambda e: e.line or 0)
    if problems:
        raise SettingsError("\n".join(str(p) for p in problems), file=problems[0].file,
                            line=problems[0].line, key=problems[0].key)
    get = lambda section: data.get(section) or {}  # noqa: E731
    folder, workers = get("inbound").get("folder") or {}, get("workers")
    destinations = _destinations(data.get("destinations", DEFAULT_DESTINATIONS), marks, name)
    routes = _routes(data.get("routes", DEFAULT_ROUTES), destinations, marks, name)
    try:
        parse_listen(get("http").get("listen", Settings.http_listen))
    except ConfigError as exc:
        raise _error(marks, ("http", "listen"), str(exc), name) from None
    return Settings(
        file=file,
        store_url=get("store").get("url", Settings.store_url),
        partners_folder=Path(get("partners").get("folder", "conf/partners")),
        mappings_root=Path(get("partners").get("mappings", "mappings")),
        inbox_enabled=folder.get("enabled", True),
        inbox_root=Path(folder.get("root", "var/inbox")),
        poll_interval=float(folder.get("poll_interval", 1.0)),
        stable_for=float(folder.get("stable_for", 2.0)),
        receive_batch=int(folder.get("batch", Settings.receive_batch)),
        outbox_root=Path(get("acks").get("folder", "var/outbox")),
        max_input_bytes=int(get("limits").get("max_input_bytes", Settings.max_input_bytes)),
        http_listen=get("http").get("listen", Settings.http_listen),
        http_enabled=bool(get("http").get("enabled", True)),
        destinations=destinations, routes=routes,
        workers=Workers(**workers))


def parse_listen(text: str) -> tuple[str, int]:
    """(host, port) of HOST:PORT ([::1]:8080 for IPv6); ConfigError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    # An IPv6 address is written in brackets: [::1]:8080, never ::1:8080.
    if (not sep or not host or not port.isdigit() or int(port) > 65535
            or (":" in host and not bracketed)):
        raise ConfigError(f"listen address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080 "
                          "or [::1]:8080 (port 0 picks a free port)")
    return host, int(port)


def _schema_error(err: jsonschema.ValidationError, marks: yaml_source.Marks,
                  file: str) -> SettingsError:
    path, message = tuple(err.absolute_path), err.message
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        if extra:
            path, message = (*path, extra[0]), f"unknown key {extra[0]!r}"
    return _error(marks, path, message, file)


def _destinations(raw: dict[str, Any], marks: yaml_source.Marks,
                  file: str) -> dict[str, Destination]:
    out = {}
    for name, spec in raw.items():
        kind = spec["type"]
        reg = registry.OUTPUTS.get(kind)
        if reg is None:
            known = ", ".join(sorted(registry.OUTPUTS))
            raise _error(marks, ("destinations", name, "type"),
                         f"unknown output kind {kind!r} (known: {known})", file)
        options = dict(spec.get("config") or {})
        try:
            channel_config.load(reg.config, options, where=f"destination {name}")
        except ConfigError as exc:
            raise _error(marks, ("destinations", name, "config"), str(exc), file) from None
        try:
            policy = RetryPolicy(**(spec.get("retry") or {}))
        except ConfigError as exc:
            raise _error(marks, ("destinations", name, "retry"), str(exc), file) from None
        out[name] = Destination(name, kind, options, policy)
    return out


def _routes(raw: list[dict[str, Any]], destinations: dict[str, Destination],
            marks: yaml_source.Marks, file: str) -> tuple[Route, ...]:
    out = []
    for i, spec in enumerate(raw):
        for j, target in enumerate(spec["to"]):
            if target not in destinations:
                known = ", ".join(sorted(destinations)) or "none"
                raise _error(marks, ("routes", i, "to", j),
                             f"no destination {target!r} (known: {known})", file)
        match = spec.get("match") or {}
        when = match.get("when")
        condition = None
        if when:
            op = next(k for k in when if k != "field")
            condition = Condition(when["field"], op, when[op])
        out.append(Route(name=spec.get("name") or f"route {i + 1}",
                         type=match.get("type", "*"), partner=match.get("partner", "*"),
                         when=condition, to=tuple(spec["to"])))
    return tuple(out)
