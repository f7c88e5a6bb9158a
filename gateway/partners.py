"""Trading partners: conf/partners/*.yaml, checked against a JSON Schema at load.

Every error names the file, the line and the key (`conf/partners/acme.yaml:7: x12.isa[0].id:
...`), using the mapping language's line-keeping YAML reader.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from canonical.errors import ConfigError, MappingFileError
from mappings.language import yaml_source
from mappings.x12 import validator

if TYPE_CHECKING:  # pydantic and the channels are imported only for partners with channels
    from channels.config import ChannelConfig
    from gateway.chains.agreement import ChainPolicy

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "partner.schema.json"


class PartnerConfigError(ConfigError):
    """A partner configuration file is invalid."""

    def __init__(self, message: str | None = None, *, file: str | None = None,
                 line: int | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.key = key


@dataclass(frozen=True)
class Outbound:
    """What we send a partner: our ids toward it, its ids, and the mappings by set."""

    sender: tuple[str, str]  # our ISA05, ISA06
    gs_sender: str
    receiver: tuple[str, str]  # the partner's ISA07, ISA08
    gs_receiver: str
    usage: str
    mappings: dict[str, Path]  # X12 set id -> outbound mapping file


@dataclass(frozen=True)
class Partner:
    """One trading partner as configured."""

    id: str
    name: str
    file: str
    isa_ids: tuple[tuple[str, str], ...] = ()  # (ISA05 qualifier, ISA06 id)
    gs_ids: tuple[str, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict)  # secret name -> env var name
    mappings: dict[str, Path] = field(default_factory=dict)  # document type -> mapping file
    # Inbound channels by kind (channels.registry.INPUTS), their settings validated.
    channels: dict[str, ChannelConfig] = field(default_factory=dict)
    # validation.accept_with_errors, as the validator spells the codes (AK403-6 ...)
    accept_with_errors: frozenset[str] = frozenset()
    outbound: Outbound | None = None  # None: we send this partner no documents
    # chains: deadlines and tolerances of its PO chains (None: gateway.chains' defaults)
    chains: ChainPolicy | None = None

    def mapping_for(self, document: str, version: str = "") -> Path | None:
        """The mapping for an X12 set (850 and 004010 look for 850.4010, then 850) or a name."""
        short = version[2:6] if len(version) >= 6 else version
        if short and f"{document}.{short}" in self.mappings:
            return self.mappings[f"{document}.{short}"]
        return self.mappings.get(document)


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text("utf-8")))


def id_pattern() -> str:
    """The pattern of a partner id, as the partner schema states it (the API's partner
    parameters take it from here too)."""
    return str(_validator().schema["properties"]["id"]["pattern"])


def is_id(text: str) -> bool:
    """Whether text is a partner id, the whole of it (a `$` alone lets a final newline by)."""
    return _id_regex().fullmatch(text) is not None


@functools.cache
def _id_regex() -> re.Pattern[str]:
    return re.compile(id_pattern())


def check_id(partner_id: str) -> None:
    """PartnerConfigError unless partner_id is a valid partner id (the schema's pattern);
    an id becomes a folder name, so `../x` must never get that far."""
    if not is_id(partner_id):
        raise PartnerConfigError(f"partner id {partner_id!r}: lower case letters, digits and "
                                 f"dashes, starting with a letter ({id_pattern()})")


def _error(marks: yaml_source.Marks, path: tuple[str | int, ...], message: str,
           file: str) -> PartnerConfigError:
    where, line = yaml_source.mark_of(marks, path)
    key = yaml_source.key_text(path)
    return PartnerConfigError(f"{where or file}:{line}: {key}: {message}", file=where or file,
                              line=line, key=key)


def _problems(data: Any, marks: yaml_source.Marks, file: str) -> list[PartnerConfigError]:
    out = []
    for err in _validator().iter_errors(data):
        path = tuple(err.absolute_path)
        message = err.message
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            if extra:
                path, message = (*path, extra[0]), f"unknown key {extra[0]!r}"
        out.append(_error(marks, path, message, file))
    return sorted(out, key=lambda e: e.line or 0)


def load(path: str | Path, *, mappings_root: str | Path = "mappings") -> Partner:
    """Read and check one partner file; mapping refs must name files under mappings_root."""
    file = str(path)
    try:
        data, marks = yaml_source.load(path)
    except MappingFileError as exc:  # the YAML reader speaks of mapping files; same message
        raise PartnerConfigError(str(exc), file=exc.file, line=exc.line) from exc
    problems = _problems(data, marks, file)
    if problems:
        if len(problems) == 1:
            raise problems[0]
        first = problems[0]
        raise PartnerConfigError("\n".join(str(p) for p in problems), file=first.file,
                                 line=first.line, key=first.key)
    stem = Path(file).stem
    if data["id"] != stem:
        raise _error(marks, ("id",), f"{data['id']!r} must match the file name ({stem}.yaml)",
                     file)
    root = Path(mappings_root)
    refs: dict[str, Path] = {}
    for doc, ref in (data.get("mappings") or {}).items():
        target = root / ref
        if not target.is_file():
            raise _error(marks, ("mappings", doc), f"{ref} not found (looked for {target})", file)
        refs[doc] = target
    x12 = data.get("x12") or {}
    outbound = _outbound(data, x12, root, marks, file)
    lenient = (data.get("validation") or {}).get("accept_with_errors") or ()
    return Partner(
        id=data["id"], name=data["name"], file=file,
        isa_ids=tuple((i["qualifier"], i["id"]) for i in x12.get("isa") or ()),
        gs_ids=tuple(x12.get("gs") or ()),
        secrets={k: v["env"] for k, v in (data.get("secrets") or {}).items()},
        mappings=refs, channels=_channels(data["id"], data.get("channels") or {}, marks, file),
        accept_with_errors=validator.leniency_codes(lenient), outbound=outbound,
        chains=_chain_policy(data.get("chains"), marks, file))


def _outbound(data: dict[str, Any], x12: dict[str, Any], root: Path, marks: yaml_source.Marks,
              file: str) -> Outbound | None:
    raw = data.get("outbound")
    if raw is None:
        return None
    if not x12.get("isa"):
        raise _error(marks, ("outbound",), "sending needs the partner's ids: x12.isa (and "
                     "x12.gs) name the receiver", file)
    refs = {}
    for doc, ref in (raw.get("mappings") or {}).items():
        target = root / ref
        if not target.is_file():
            raise _error(marks, ("outbound", "mappings", doc), f"{ref} not found (looked for "
                         f"{target})", file)
        refs[doc] = target
    ours = (raw["isa"]["qualifier"], raw["isa"]["id"])
    theirs = x12["isa"][0]
    return Outbound(sender=ours, gs_sender=raw.get("gs") or ours[1],
                    receiver=(theirs["qualifier"], theirs["id"]),
                    gs_receiver=(x12.get("gs") or [theirs["id"]])[0],
                    usage=raw.get("usage", "P"), mappings=refs)


def _chain_policy(raw: dict[str, Any] | None, marks: yaml_source.Marks,
                  file: str) -> ChainPolicy | None:
    """The `chains:` block checked by its config model (gateway.chains.agreement)."""
    if raw is None:
        return None
    from channels import config
    from gateway.chains.agreement import ChainPolicy

    settings, found = config.problems(ChainPolicy, dict(raw))  # type: ignore[arg-type]
    if settings is None:
        errs = [_error(marks, ("chains", *loc), msg, file) for loc, msg in found]
        raise PartnerConfigError("\n".join(map(str, errs)), file=errs[0].file,
                                 line=errs[0].line, key=errs[0].key)
    return settings  # type: ignore[return-value]


def _channels(partner: str, raw: dict[str, Any], marks: yaml_source.Marks,
              file: str) -> dict[str, ChannelConfig]:
    """Each declared channel's settings checked by its kind's config model."""
    if not raw:
        return {}
    from channels import config, registry  # paramiko and the rest, only for partners that use them

    out: dict[str, ChannelConfig] = {}
    for kind, options in raw.items():
        reg = registry.INPUTS.get(kind)
        known = ", ".join(registry.partner_kinds())
        if reg is None:
            raise _error(marks, ("channels", kind),
                         f"unknown channel kind {kind!r} (known: {known})", file)
        if not reg.per_partner:
            raise _error(marks, ("channels", kind),
                         f"{kind!r} is configured for every partner in conf/gateway.yaml"
                         f" (inbound.{kind}), not in a partner's file (known here: {known})",
                         file)
        settings, found = config.problems(reg.config, dict(options))
        if settings is None:
            # Each problem at its own key's line (a missing key at its channel's line).
            errs = [_error(marks, ("channels", kind, *loc), msg, file) for loc, msg in found]
            raise PartnerConfigError("\n".join(map(str, errs)), file=errs[0].file,
                                     line=errs[0].line, key=errs[0].key)
        out[kind] = settings
    return out


class Partners:
    """Every configured partner, by id and by X12 sender."""

    def __init__(self, partners: list[Partner]) -> None:
        self.by_id: dict[str, Partner] = {}
        self._by_sender: dict[tuple[str, str], Partner] = {}
        for p in partners:
            if p.id in self.by_id:
                raise PartnerConfigError(f"{p.file}:1: id: {p.id!r} is also used by "
                                         f"{self.by_id[p.id].file}", file=p.file, line=1, key="id")
            self.by_id[p.id] = p
            for sender in p.isa_ids:
                other = self._by_sender.get(sender)
                if other is not None:
                    raise PartnerConfigError(
                        f"{p.file}: x12.isa: {sender[0]}:{sender[1]} is also {other.id}'s sender "
                        f"({other.file}); one sender id must name one partner", file=p.file,
                        key="x12.isa")
                self._by_sender[sender] = p

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self.by_id.values(), key=lambda p: p.id))

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, partner_id: str) -> Partner:
        """The partner with this id; ConfigError naming the known ids when there is none."""
        try:
            return self.by_id[partner_id]
        except KeyError:
            known = ", ".join(sorted(self.by_id)) or "none configured"
            raise PartnerConfigError(f"no partner {partner_id!r} (known: {known})") from None

    def find_by_sender(self, qualifier: str, sender_id: str) -> Partner | None:
        """The partner whose ISA05/ISA06 these are (padding blanks ignored), or None."""
        return self._by_sender.get((qualifier.strip(), sender_id.strip()))


def load_all(folder: str | Path = "conf/partners", *,
             mappings_root: str | Path = "mappings") -> Partners:
    """Every partner file in a folder (none when the folder does not exist)."""
    base = Path(folder)
    files = sorted(base.glob("*.yaml")) if base.is_dir() else []
    return Partners([load(f, mappings_root=mappings_root) for f in files])
