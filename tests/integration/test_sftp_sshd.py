"""The SFTP input against a real OpenSSH sshd on a loopback port (see tests/sshd_support.py)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paramiko
import pytest

from canonical import errors
from channels import registry
from channels.sftp import HostKeyRefused, SftpInput, SftpInputConfig
from tests.sshd_support import SshServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """A clock the test moves, so backoff waits pass without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Drop:
    """A partner's folders on the server, and a channel to them."""

    def __init__(self, server: SshServer, root: Path) -> None:
        self.server = server
        self.inbox, self.archive, self.outbox = root / "outbound", root / "archive", root / "inbound"
        self.spool = root / "spool"
        for d in (self.inbox, self.archive, self.outbox, self.spool):
            d.mkdir(parents=True)

    def options(self, **extra: Any) -> dict[str, Any]:
        return self.server.config_options(inbox=str(self.inbox), archive=str(self.archive),
                                          outbox=str(self.outbox), spool_dir=str(self.spool),
                                          **extra)

    def channel(self, clock: Clock | None = None, **extra: Any) -> SftpInput:
        config = SftpInputConfig.model_validate(self.options(**extra))
        return SftpInput(config, partner="acme", clock=clock or Clock())


@pytest.fixture
def drop(sshd: SshServer, tmp_path: Path) -> Drop:
    return Drop(sshd, tmp_path / "remote")


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_new_file_is_read_then_archived_after_the_ack(drop: Drop) -> None:
    (drop.inbox / "po1.edi").write_bytes(b"ISA*00*first")
    ch = registry.build_input("sftp", drop.options(), partner="acme")
    try:
        assert ch.read() == []  # first sighting
        [m] = ch.read()
        assert (m.partner, m.source_name, m.data) == ("acme", "po1.edi", b"ISA*00*first")
        assert names(drop.inbox) == ["po1.edi"]  # nothing moves before the store's commit
        ch.ack(m)
        assert (names(drop.inbox), names(drop.archive)) == ([], ["po1.edi"])
        assert (drop.archive / "po1.edi").read_bytes() == b"ISA*00*first"
        assert names(drop.spool) == []
    finally:
        ch.close()


def test_a_growing_file_is_taken_only_when_complete(drop: Drop) -> None:
    ch = drop.channel()
    target = drop.inbox / "big.edi"
    target.write_bytes(b"ISA*first part")
    (drop.inbox / "next.edi.part").write_bytes(b"ISA*being uploaded")
    assert ch.read() == []
    with target.open("ab") as f:
        f.write(b", second part")
    assert ch.read() == []  # it grew since the last poll
    os.rename(drop.inbox / "next.edi.part", drop.inbox / "next.edi")  # the upload finished
    got = {m.source_name: m.data for m in ch.read()}
    assert got == {"big.edi": b"ISA*first part, second part"}
    got = {m.source_name: m.data for m in ch.read()}
    assert got == {"next.edi": b"ISA*being uploaded"}
    ch.close()


@pytest.mark.parametrize("pinned", ["another ed25519 key", "a key of another type"])
def test_a_host_key_not_pinned_is_refused_before_anything_is_read(
        drop: Drop, tmp_path: Path, pinned: str) -> None:
    kind = "ed25519" if pinned == "another ed25519 key" else "ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(tmp_path / "other")],
                   check=True)
    other = (tmp_path / "other.pub").read_text().strip()
    (drop.inbox / "po1.edi").write_bytes(b"ISA*secret order")
    ch = drop.channel(host_key=other)
    for _ in range(2):
        with pytest.raises(HostKeyRefused) as refused:
            ch.connect()
    text = str(refused.value)
    presented = subprocess.run(["ssh-keygen", "-lf", str(drop.server.host_key_path) + ".pub"],
                               capture_output=True, text=True, check=True).stdout.split()[1]
    assert f"presented host key ssh-ed25519 {presented}" in text
    assert f"ssh-keyscan -p {drop.server.port} 127.0.0.1" in text
    assert "nothing was read" in text
    # Never logged in, so nothing could have been listed or read: the server says so too.
    log = drop.server.log_text()
    assert "Connection from 127.0.0.1" in log
    assert "Accepted publickey" not in log and "Starting session" not in log
    assert (names(drop.inbox), names(drop.archive), names(drop.spool)) == (["po1.edi"], [], [])


def test_a_server_killed_mid_transfer_is_a_transient_error_and_the_next_poll_takes_it(
        drop: Drop, monkeypatch: pytest.MonkeyPatch) -> None:
    body = os.urandom(4 << 20)
    (drop.inbox / "big.edi").write_bytes(body)
    real_getfo = paramiko.SFTPClient.getfo
    killed: list[int] = []

    def getfo_that_kills(self: paramiko.SFTPClient, path: str, fl: Any, **kw: Any) -> int:
        def progress(done: int, total: int) -> None:
            if not killed and 0 < done < total:
                killed.append(done)
                drop.server.kill()
        # One request at a time, so the kill lands mid-file, not after a prefetch got it all.
        return real_getfo(self, path, fl, callback=progress, prefetch=False)

    monkeypatch.setattr(paramiko.SFTPClient, "getfo", getfo_that_kills)
    clock = Clock()
    ch = drop.channel(clock)
    assert ch.read() == []
    with pytest.raises(errors.TransientError) as lost:
        ch.read()
    assert killed and killed[0] < len(body)
    assert str(lost.value).startswith(f"{ch.endpoint}: polling the inbox: ")
    assert "next try in" in str(lost.value)
    assert (names(drop.inbox), names(drop.archive), names(drop.spool)) == (["big.edi"], [], [])

    monkeypatch.setattr(paramiko.SFTPClient, "getfo", real_getfo)
    drop.server.start()  # same port, same host key
    assert ch.read() == []  # still backing off: not even a connection attempt
    clock.now = ch.retry_at
    assert ch.read() == []
    [m] = ch.read()
    assert m.data == body
    ch.ack(m)
    assert names(drop.archive) == ["big.edi"]
    ch.close()


CRASHING_READER = """
import json, os, signal, sys
from channels.sftp import SftpInput, SftpInputConfig
ch = SftpInput(SftpInputConfig.model_validate(json.loads(sys.argv[1])), partner="acme")
ch.read()
[m] = ch.read()
sys.stdout.write(m.data.hex())
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)  # handed over, store "committed", ack never sent
"""


def test_a_crash_between_handing_over_and_ack_offers_the_same_bytes_again(drop: Drop) -> None:
    (drop.inbox / "po7.edi").write_bytes(b"ISA*00*order seven")
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASHING_READER),
                          json.dumps(drop.options())], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == -9, run.stderr
    assert bytes.fromhex(run.stdout) == b"ISA*00*order seven"
    assert (names(drop.inbox), names(drop.archive)) == (["po7.edi"], [])
    assert len(names(drop.spool)) == 1  # the dead process's download
    ch = drop.channel()  # the restarted worker
    assert ch.read() == []
    [again] = ch.read()
    assert (again.source_name, again.data) == ("po7.edi", b"ISA*00*order seven")
    ch.ack(again)
    assert (names(drop.inbox), names(drop.archive), names(drop.spool)) == ([], ["po7.edi"], [])
    ch.close()


def test_names_and_files_that_could_leave_the_inbox_are_never_taken(
        drop: Drop, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = drop.inbox.parent
    (outside / "x").write_bytes(b"not for the partner to hand us")
    (outside / "secret.edi").write_bytes(b"ISA*outside the inbox")
    (drop.inbox / "good.edi").write_bytes(b"ISA*good")
    (drop.inbox / "link.edi").symlink_to(outside / "secret.edi")
    (drop.inbox / "sub").mkdir()
    (drop.inbox / "sub" / "deep.edi").write_bytes(b"ISA*deep")
    os.mkfifo(drop.inbox / "pipe.edi")
    (drop.inbox / "bad\nname.edi").write_bytes(b"ISA*newline")
    (drop.inbox / "..\\x.edi").write_bytes(b"ISA*backslash")
    real_listdir = paramiko.SFTPClient.listdir_attr

    def hostile_listdir(self: paramiko.SFTPClient, path: str = ".") -> list[Any]:
        # What a compromised server could answer: a name that walks out of the inbox.
        forged = SimpleNamespace(filename="../x", st_size=30, st_mtime=1,
                                 st_mode=stat.S_IFREG | 0o644)
        return [*real_listdir(self, path), forged]

    monkeypatch.setattr(paramiko.SFTPClient, "listdir_attr", hostile_listdir)
    ch = drop.channel()
    ch.read()
    got = ch.read()
    assert [m.source_name for m in got] == ["good.edi"]
    ch.ack(got[0])
    assert names(drop.archive) == ["good.edi"]
    assert names(outside) == ["archive", "inbound", "outbound", "secret.edi", "spool", "x"]
    assert sorted(names(drop.inbox)) == sorted(["bad\nname.edi", "link.edi", "pipe.edi", "sub",
                                               "..\\x.edi"])
    ch.close()


def test_an_ack_is_uploaded_as_part_then_renamed_into_the_outbox(
        drop: Drop, caplog: pytest.LogCaptureFixture) -> None:
    (drop.outbox / "997_000000101.x12.part").write_bytes(b"left by a crash")
    ch = drop.channel()
    caplog.set_level(logging.DEBUG, logger="paramiko")  # paramiko logs each SFTP request
    remote = ch.put("997_000000101.x12", b"ISA*997 body")
    assert remote == f"{drop.outbox}/997_000000101.x12"
    assert names(drop.outbox) == ["997_000000101.x12"]
    assert (drop.outbox / "997_000000101.x12").read_bytes() == b"ISA*997 body"
    part, final = f"{drop.outbox}/997_000000101.x12.part", f"{drop.outbox}/997_000000101.x12"
    requests = [r.getMessage().split("] ", 1)[1] for r in caplog.records
                if r.name == "paramiko.transport.sftp" and "] " in r.getMessage()]
    writes = [i for i, r in enumerate(requests) if r.startswith("open(") and r.endswith("'wb')")]
    # Written under the .part name only, then renamed in one step onto the final name.
    assert [requests[i] for i in writes] == [f"open({part.encode()!r}, 'wb')"]
    assert requests.index(f"posix_rename({part.encode()!r}, {final.encode()!r})") > writes[0]
    ch.put("997_000000101.x12", b"ISA*997 sent again")  # the same name again replaces it
    assert (drop.outbox / "997_000000101.x12").read_bytes() == b"ISA*997 sent again"
    assert names(drop.outbox) == ["997_000000101.x12"]
    ch.close()


def test_a_frozen_server_is_cut_off_by_the_watchdog(drop: Drop) -> None:
    clock = Clock()
    ch = drop.channel(clock, poll_budget=1, timeout=30)
    (drop.inbox / "po.edi").write_bytes(b"ISA*po")
    assert ch.read() == []
    drop.server.freeze()  # accepts nothing, answers nothing, closes nothing
    try:
        with pytest.raises(errors.TransientError, match="watchdog closed the connection"):
            ch.read()
    finally:
        drop.server.thaw()
    clock.now = ch.retry_at
    assert ch.read() == []
    assert [m.data for m in ch.read()] == [b"ISA*po"]
    ch.close()


def test_one_partners_dead_server_does_not_hold_up_another(
        sshd_factory: Callable[[], SshServer], tmp_path: Path) -> None:
    dead, live = Drop(sshd_factory(), tmp_path / "a"), Drop(sshd_factory(), tmp_path / "b")
    (dead.inbox / "a.edi").write_bytes(b"ISA*a")
    (live.inbox / "b.edi").write_bytes(b"ISA*b")
    a, b = dead.channel(poll_budget=300), live.channel()
    assert a.read() == []
    dead.server.freeze()
    outcome: list[object] = []
    blocked = threading.Thread(target=lambda: outcome.append(a.read()))
    blocked.start()
    try:
        assert b.read() == []
        assert [m.data for m in b.read()] == [b"ISA*b"]
        assert blocked.is_alive() and outcome == []  # a is still waiting on its server
    finally:
        dead.server.thaw()
    blocked.join(60)
    assert [[m.data for m in got] for got in outcome] == [[b"ISA*a"]]  # type: ignore[attr-defined]
    a.close()
    b.close()



def test_a_server_restarted_between_polls_is_reconnected_without_an_error(drop: Drop) -> None:
    (drop.inbox / "po.edi").write_bytes(b"ISA*po")
    ch = drop.channel()
    assert ch.read() == []
    drop.server.kill()
    drop.server.start()
    assert ch.read() == []  # the old connection is gone: a new one, and a first sighting
    assert [m.data for m in ch.read()] == [b"ISA*po"]
    ch.close()


def test_a_password_never_reaches_a_log_or_an_error(
        drop: Drop, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    canary = "canary-sftp-pw-51c0de"
    monkeypatch.setenv("EDIGW_TEST_SFTP_PW", canary)
    caplog.set_level(logging.DEBUG)  # paramiko's own debug lines included
    options = drop.options(password={"env": "EDIGW_TEST_SFTP_PW"})
    del options["private_key_file"]
    ch = registry.build_input("sftp", options, partner="acme")
    with pytest.raises(errors.PermanentError, match="login refused") as refused:
        ch.read()  # the server takes keys only
    assert "Authentication" in caplog.text  # the login was tried, and logged
    for text in (caplog.text, str(refused.value), repr(refused.value.__cause__), repr(ch),
                 repr(ch.config), drop.server.log_text()):  # type: ignore[attr-defined]
        assert canary not in text
