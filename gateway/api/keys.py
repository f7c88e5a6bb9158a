"""API keys: only their sha256 is configured (conf/api-keys.yaml), each with a role.

    keys:
      - {name: ops-alice, sha256: 9f86d0..., role: operator}
      - {name: acme-erp, sha256: 2c26b4..., role: partner, partner: acme}
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from canonical.errors import ConfigError

ROLES = ("operator", "partner")
PREFIX = "edigw_"
# A presented key longer than this is not one of ours; hashing megabytes per request is waste.
MAX_KEY_LENGTH = 200
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: an operator, or a partner limited to its own data."""

    name: str
    role: str
    partner: str | None = None

    @property
    def actor(self) -> str:
        """The audit trail's name for the caller."""
        return f"api:{self.name}"


@dataclass(frozen=True)
class KeyEntry:
    """One configured key: its hash and what it may do."""

    name: str
    sha256: str
    role: str
    partner: str | None = None


def new_key() -> str:
    """A new random key (256 bits), to be shown once and never stored."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The sha256 (hex) under which a key is configured."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def entry_line(entry: KeyEntry) -> str:
    """The YAML list item that configures entry."""
    partner = f", partner: {entry.partner}" if entry.partner else ""
    return f"  - {{name: {entry.name}, sha256: {entry.sha256}, role: {entry.role}{partner}}}"


def check_entry(name: str, role: str, partner: str | None, where: str = "") -> None:
    """ConfigError unless role and partner fit together and the name is plain."""
    at = f"{where}: " if where else ""
    if role not in ROLES:
        raise ConfigError(f"{at}role {role!r} is not one of {', '.join(ROLES)}")
    if role == "partner" and not partner:
        raise ConfigError(f"{at}a partner key needs the partner's id")
    if role == "operator" and partner:
        raise ConfigError(f"{at}an operator key sees every partner; drop partner: {partner}")
    if not _NAME.match(name):
        raise ConfigError(f"{at}name {name!r}: letters, digits and _.@- only, 64 at most")


def load(path: Path) -> list[KeyEntry]:
    """The configured keys; ConfigError naming the file and entry when one is wrong."""
    if not path.is_file():
        return []  # no keys: every request is refused, which is the safe default
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        hint = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}{line}: {hint}; the file is `keys:` on a line of its own, "
                          "then one `  - {name: ..., sha256: ..., role: ...}` line per key "
                          "(a file that says `keys: []` takes no lines below it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    items = data.get("keys") if isinstance(data, dict) else None
    if items is None and isinstance(data, dict) and "keys" in data:
        items = []  # `keys:` with nothing under it yet
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected `keys:` with a list of keys")
    out: list[KeyEntry] = []
    for i, item in enumerate(items):
        where = f"{path}: keys[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "sha256", "role", "partner"}:
            raise ConfigError(f"{where}: expected name, sha256, role and (for partners) partner")
        digest = str(item.get("sha256", "")).lower()
        if not _HEX64.match(digest):
            raise ConfigError(f"{where}: sha256 must be 64 hex digits (the key's hash, never "
                              "the key itself)")
        name = str(item.get("name") or f"key-{digest[:8]}")
        partner = item.get("partner")
        check_entry(name, str(item.get("role")), str(partner) if partner else None, where)
        if any(e.sha256 == digest for e in out):
            raise ConfigError(f"{where}: the same key is configured twice")
        out.append(KeyEntry(name, digest, str(item["role"]), str(partner) if partner else None))
    return out


class KeyRing:
    """The configured keys, read again when the file changes (new keys need no restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._entries: list[KeyEntry] = []
        self._refresh()

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            stamp = (0.0, -1)
        with self._lock:
            if stamp != self._stamp:
                self._entries = load(self.path)
                self._stamp = stamp

    def find(self, presented: str) -> Principal | None:
        """The principal of a presented key, or None; every entry is compared in constant
        time, so the answer's timing says nothing about which hashes exist."""
        if not presented or len(presented) > MAX_KEY_LENGTH:
            return None
        self._refresh()
        digest = hash_key(presented).encode()
        found = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.sha256.encode()) and found is None:
                found = entry
        if found is None:
            return None
        return Principal(found.name, found.role, found.partner)
