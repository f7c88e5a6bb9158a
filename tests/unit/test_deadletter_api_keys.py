"""API key configuration: hashes only, roles checked, new keys picked up without a restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from canonical.errors import ConfigError
from gateway.api import keys
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def _write(path: Path, *entries: keys.KeyEntry) -> None:
    path.write_text("keys:\n" + "".join(keys.entry_line(e) + "\n" for e in entries))


def test_a_key_is_found_by_its_hash_with_its_role(tmp_path: Path) -> None:
    op, acme = keys.new_key(), keys.new_key()
    path = tmp_path / "api-keys.yaml"
    _write(path, keys.KeyEntry("ops", keys.hash_key(op), "operator"),
           keys.KeyEntry("acme-erp", keys.hash_key(acme), "partner", "acme"))
    ring = keys.KeyRing(path)
    assert ring.find(op) == keys.Principal("ops", "operator")
    assert ring.find(acme) == keys.Principal("acme-erp", "partner", "acme")
    assert ring.find(acme).actor == "api:acme-erp"
    for wrong in ("", op + "x", keys.hash_key(op), "x" * 10_000):
        assert ring.find(wrong) is None
    assert op not in path.read_text()


def test_a_new_key_works_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.yaml"
    ring = keys.KeyRing(path)  # no file yet: nothing is accepted
    key = keys.new_key()
    assert ring.find(key) is None
    _write(path, keys.KeyEntry("late", keys.hash_key(key), "operator"))
    os.utime(path, (1, 1))  # a distinct stamp even within one clock tick
    assert ring.find(key) == keys.Principal("late", "operator")


@pytest.mark.parametrize(("text", "says"), [
    ("keys: {}", "expected `keys:` with a list"),
    ("keys: [{sha256: abc, role: operator}]", "64 hex digits"),
    (f"keys: [{{sha256: {'a' * 64}, role: admin}}]", "role 'admin' is not one of"),
    (f"keys: [{{sha256: {'a' * 64}, role: partner}}]", "needs the partner's id"),
    (f"keys: [{{sha256: {'a' * 64}, role: operator, partner: acme}}]", "sees every partner"),
    (f"keys: [{{sha256: {'a' * 64}, role: operator, secret: x}}]", "expected name, sha256"),
    (f"keys: [{{sha256: {'a' * 64}, role: operator}}, {{sha256: {'a' * 64}, role: operator}}]",
     "configured twice"),
    (f"keys: [{{name: 'a b', sha256: {'a' * 64}, role: operator}}]", "letters, digits"),
])
def test_configuration_errors_name_the_entry(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "api-keys.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        keys.load(path)
    assert says in str(caught.value) and str(path) in str(caught.value)


def test_the_shipped_file_has_no_keys() -> None:
    assert keys.load(REPO / "conf" / "api-keys.yaml") == []
