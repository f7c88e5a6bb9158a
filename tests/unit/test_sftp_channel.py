"""The SFTP input's logic against an in-memory server: names, stability, ack, backoff, secrets."""

from __future__ import annotations

import logging
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paramiko
import pytest

from canonical import errors
from channels import registry, sftp_names
from channels.base import Input
from channels.sftp import SftpInput, SftpInputConfig
from channels.sftp_link import Target, parse_host_key

pytestmark = pytest.mark.unit

# A real server's public key (made by ssh-keygen for this test file).
HOST_KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIB+i+f+g512hHOTFePxcEAxWPHHEgU7usKyDlExOBaN"
HOST_KEY = parse_host_key(HOST_KEY_LINE)
CANARY = "canary-pw-7f3a9c"  # a password that must never show anywhere


@dataclass
class FakeFile:
    data: bytes
    mtime: int = 1_700_000_000
    mode: int = stat.S_IFREG | 0o644


@dataclass
class FakeServer:
    """An SFTP server in memory: absolute paths to files, and a record of every call."""

    files: dict[str, FakeFile] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    extra_listing: list[SimpleNamespace] = field(default_factory=list)
    during_download: Any = None  # called with the path while it is being downloaded
    opens: int = 0
    fail_open: BaseException | None = None
    alive: bool = True  # the connection, as paramiko sees it

    def listdir_attr(self, folder: str) -> list[SimpleNamespace]:
        self.calls.append(("list", folder))
        out = [SimpleNamespace(filename=p.rsplit("/", 1)[1], st_size=len(f.data),
                               st_mtime=f.mtime, st_mode=f.mode)
               for p, f in sorted(self.files.items()) if p.rsplit("/", 1)[0] == folder]
        return out + self.extra_listing

    def _get(self, path: str) -> FakeFile:
        if path not in self.files:
            raise FileNotFoundError(2, "No such file", path)
        return self.files[path]

    def stat(self, path: str) -> SimpleNamespace:
        f = self._get(path)
        return SimpleNamespace(st_size=len(f.data), st_mtime=f.mtime, st_mode=f.mode)

    def getfo(self, path: str, out: Any) -> int:
        self.calls.append(("get", path))
        data = self._get(path).data
        if self.during_download:
            self.during_download(path)
        out.write(data)
        return len(data)

    def rename(self, old: str, new: str) -> None:
        self.calls.append(("rename", f"{old} -> {new}"))
        if new in self.files:
            raise OSError("Failure")
        self.files[new] = self.files.pop(old)

    def posix_rename(self, old: str, new: str) -> None:
        self.calls.append(("posix_rename", f"{old} -> {new}"))
        self.files[new] = self.files.pop(old)

    def remove(self, path: str) -> None:
        self.calls.append(("remove", path))
        del self.files[path]

    def putfo(self, fl: Any, path: str, file_size: int = 0, confirm: bool = True) -> None:
        self.calls.append(("put", path))
        self.files[path] = FakeFile(fl.read())

    def put_file(self, path: str, data: bytes, **kw: Any) -> None:
        self.files[path] = FakeFile(data, **kw)


class FakeLink:
    def __init__(self, server: FakeServer, target: Target) -> None:
        self.server, self.target = server, target

    def open(self) -> FakeServer:
        self.server.opens += 1
        if self.server.fail_open is not None:
            raise self.server.fail_open
        return self.server

    def alive(self) -> bool:
        return self.server.alive

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def options(**extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": 2222, "username": "distributor",
            "password": {"env": "TEST_SFTP_PW"}, "host_key": HOST_KEY_LINE,
            "inbox": "/out", "archive": "/out/archive", "outbox": "/in", **extra}


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SFTP_PW", CANARY)


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


def channel(server: FakeServer, clock: Clock | None = None, wait: Any = None,
            **extra: Any) -> SftpInput:
    config = SftpInputConfig.model_validate(options(**extra))
    return SftpInput(config, partner="acme", connector=lambda t: FakeLink(server, t),
                     clock=clock or Clock(), wait=wait)


# -- names and stability


@pytest.mark.parametrize("name", ["../x", "..", ".", "", "a/b", "/etc/passwd", "..\\x",
                                  "x\x00y", "po\n.edi", "bell\x07", "x" * 256, "\udcff.edi"])
def test_dangerous_remote_names_are_refused(name: str) -> None:
    assert sftp_names.refusal(name) is not None


@pytest.mark.parametrize("name", ["PO 1.edi", "..x", "Bestellung-Ä.x12", "a" * 255, "-rf"])
def test_ordinary_remote_names_pass(name: str) -> None:
    assert sftp_names.refusal(name) is None


@pytest.mark.parametrize("name", [".hidden", "po.part", "PO.TMP", "x.filepart", "y.partial"])
def test_hidden_and_partial_files_are_skipped(name: str) -> None:
    assert sftp_names.skipped(name)


def test_a_file_is_ready_when_unchanged_across_two_polls() -> None:
    s = sftp_names.Stability()
    assert s.observe({"a": (10, 1)}) == []  # first sighting
    assert s.observe({"a": (20, 1)}) == []  # grew
    assert s.observe({"a": (20, 2)}) == []  # touched
    assert s.observe({"a": (20, 2), "b": (1, 1)}) == ["a"]
    assert s.observe({"b": (1, 1)}) == ["b"]  # a gone: forgotten
    assert s.observe({"a": (20, 2), "b": (1, 1)}) == ["b"]  # a back: a new first sighting
    s.forget("b")
    assert s.observe({"a": (20, 2), "b": (1, 1)}) == ["a"]


# -- polling


def test_a_new_file_is_handed_over_on_its_second_poll(server: FakeServer) -> None:
    server.put_file("/out/po1.edi", b"ISA*00*")
    ch = channel(server)
    assert isinstance(ch, Input)
    assert ch.read() == []
    [m] = ch.read()
    assert (m.partner, m.source_name, m.data) == ("acme", "po1.edi", b"ISA*00*")
    assert m.metadata["remote_path"] == "/out/po1.edi"
    assert m.metadata["endpoint"] == "sftp://distributor@127.0.0.1:2222/out"
    assert ch.read() == []  # handed over, not acked: not offered twice in one session
    assert "/out/po1.edi" in server.files  # nothing moves before the ack


def test_a_growing_file_is_taken_only_once_complete(server: FakeServer) -> None:
    ch = channel(server)
    server.put_file("/out/big.edi", b"ISA*part one")
    assert ch.read() == []
    server.put_file("/out/big.edi", b"ISA*part one, part two")
    assert ch.read() == []
    server.put_file("/out/big.edi", b"ISA*part one, part two", mtime=1_700_000_009)
    assert ch.read() == []
    [m] = ch.read()
    assert m.data == b"ISA*part one, part two"
    assert [c for c in server.calls if c[0] == "get"] == [("get", "/out/big.edi")]


def test_a_file_that_changes_while_downloading_is_not_handed_over(server: FakeServer) -> None:
    ch = channel(server)
    server.put_file("/out/po.edi", b"ISA*1")
    assert ch.read() == []

    def grow(path: str) -> None:
        server.during_download = None
        server.put_file(path, b"ISA*1 and more")
    server.during_download = grow
    assert ch.read() == []  # downloaded, but it moved under us: start over
    assert ch.read() == []  # the new size is a first sighting
    [m] = ch.read()
    assert m.data == b"ISA*1 and more"


def test_refused_names_and_non_files_are_never_fetched(server: FakeServer,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    server.put_file("/out/good.edi", b"ISA")
    server.put_file("/out/link.edi", b"", mode=stat.S_IFLNK | 0o777)
    server.put_file("/out/sub", b"", mode=stat.S_IFDIR | 0o755)
    server.put_file("/out/huge.edi", b"x" * 11)
    # What a hostile or broken server could list; no real file is named like this.
    server.extra_listing = [SimpleNamespace(filename=n, st_size=3, st_mtime=1,
                                            st_mode=stat.S_IFREG | 0o644)
                            for n in ("../x", "a/b", "x\x00y", "..")]
    ch = channel(server, max_bytes=10)
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        got = ch.read()
    assert [h.name for h in ch._handed.values()] == ["good.edi"]
    assert got == []
    assert [c for c in server.calls if c[0] == "get"] == [("get", "/out/good.edi")]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 7  # each refusal once, not once per poll
    assert any("'../x' refused: contains a path separator" in w for w in warned)
    assert any("'link.edi' refused: is not a regular file" in w for w in warned)
    assert any("over max_bytes 10" in w for w in warned)


def test_downloads_go_to_a_spool_file_named_by_us(server: FakeServer, tmp_path: Path) -> None:
    server.put_file("/out/po.edi", b"ISA")
    ch = channel(server, spool_dir=str(tmp_path))
    ch.read()
    [m] = ch.read()
    [spooled] = list(tmp_path.iterdir())
    assert spooled.name.startswith("edigw-sftp-acme-") and "po.edi" not in spooled.name
    assert spooled.read_bytes() == b"ISA"
    ch.ack(m)
    assert list(tmp_path.iterdir()) == []


# -- ack


def test_ack_moves_the_file_to_the_archive(server: FakeServer) -> None:
    server.put_file("/out/po.edi", b"ISA")
    ch = channel(server)
    ch.read()
    [m] = ch.read()
    ch.ack(m)
    assert set(server.files) == {"/out/archive/po.edi"}
    server.put_file("/out/po.edi", b"ISA again")  # the same name tomorrow
    ch.read()
    [m2] = ch.read()
    ch.ack(m2)
    names = sorted(server.files)
    assert names[0] == "/out/archive/po.edi" and names[1].startswith("/out/archive/po.edi.")
    assert server.files[names[1]].data == b"ISA again"


def test_ack_deletes_when_so_configured(server: FakeServer) -> None:
    server.put_file("/out/po.edi", b"ISA")
    ch = channel(server, archive=None, delete_after_receive=True)
    ch.read()
    ch.ack(ch.read()[0])
    assert server.files == {}


def test_a_file_replaced_after_reading_is_not_archived(server: FakeServer) -> None:
    server.put_file("/out/po.edi", b"ISA 1")
    ch = channel(server)
    ch.read()
    [m] = ch.read()
    server.put_file("/out/po.edi", b"ISA 2, new content")
    ch.ack(m)
    assert server.files["/out/po.edi"].data == b"ISA 2, new content"


def test_an_unacked_file_is_offered_again_after_reconnecting(server: FakeServer) -> None:
    server.put_file("/out/po.edi", b"ISA*same bytes")
    ch = channel(server)
    ch.read()
    [first] = ch.read()
    ch.close()  # as a crash before the store's commit would
    ch.read()
    [again] = ch.read()
    assert (again.source_name, again.data) == (first.source_name, first.data)
    ch.ack(again)
    ch.ack(first)  # a late ack of the earlier copy: already archived, harmless
    assert set(server.files) == {"/out/archive/po.edi"}


def test_ack_of_a_foreign_message_is_refused(server: FakeServer) -> None:
    from channels.base import InboundMessage
    with pytest.raises(errors.PermanentError, match="did not hand over"):
        channel(server).ack(InboundMessage("acme", "po.edi", b"x"))


# -- outbox


def test_put_uploads_as_part_then_renames(server: FakeServer) -> None:
    ch = channel(server)
    assert ch.put("997_000000101.x12", b"ISA*997") == "/in/997_000000101.x12"
    ops = [c for c in server.calls if c[0] in ("put", "posix_rename")]
    assert ops == [("put", "/in/997_000000101.x12.part"),
                   ("posix_rename", "/in/997_000000101.x12.part -> /in/997_000000101.x12")]
    assert server.files["/in/997_000000101.x12"].data == b"ISA*997"


@pytest.mark.parametrize("name", ["../997.x12", "a/b", ".hidden", "x.part"])
def test_put_refuses_names_that_are_not_plain(server: FakeServer, name: str) -> None:
    with pytest.raises(errors.PermanentError, match="outbox name"):
        channel(server).put(name, b"x")
    assert server.opens == 0


def test_put_without_an_outbox_is_a_config_error(server: FakeServer) -> None:
    with pytest.raises(errors.ConfigError, match="no outbox"):
        channel(server, outbox=None).put("a.x12", b"x")


# -- failures, backoff and the watchdog


def test_a_failed_connection_backs_off_before_trying_again(server: FakeServer) -> None:
    clock, waits = Clock(), []

    def wait(state: Any) -> float:
        waits.append(state.attempt_number)
        return 10.0 * state.attempt_number
    ch = channel(server, clock=clock, wait=wait)
    server.fail_open = ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(errors.TransientError, match=r"Connection refused; next try in 10\.0 s"):
        ch.read()
    clock.now += 9
    assert ch.read() == []  # still backing off: no connection attempt
    assert server.opens == 1
    clock.now += 1
    with pytest.raises(errors.TransientError, match=r"next try in 20\.0 s"):
        ch.read()
    assert (server.opens, waits) == (2, [1, 2])
    server.fail_open = None
    server.put_file("/out/po.edi", b"ISA")
    clock.now += 20
    assert ch.read() == []
    assert len(ch.read()) == 1
    server.fail_open = ConnectionRefusedError(111, "Connection refused")
    ch.close()
    with pytest.raises(errors.TransientError):
        ch.read()
    assert waits == [1, 2, 1]  # a success starts the schedule over


def test_the_default_backoff_is_jittered_and_capped(server: FakeServer) -> None:
    ch = channel(server, backoff_initial=1, backoff_max=30)
    draws = {ch._wait(SimpleNamespace(attempt_number=4)) for _ in range(50)}
    assert len(draws) > 1 and all(0 <= d <= 16 for d in draws)
    assert all(0 <= ch._wait(SimpleNamespace(attempt_number=20)) <= 30 for _ in range(50))


def test_the_watchdog_closes_a_connection_that_hangs(server: FakeServer) -> None:
    released = threading.Event()

    class Hanging(FakeLink):
        def open(self) -> FakeServer:
            released.wait(60)  # a server that accepted and then went silent
            raise EOFError("closed under us")

        def abort(self) -> None:
            released.set()

    config = SftpInputConfig.model_validate(options(poll_budget=0.1))
    ch = SftpInput(config, partner="acme", connector=lambda t: Hanging(server, t))
    with pytest.raises(errors.TransientError, match="watchdog closed the connection"):
        ch.read()
    assert released.is_set()


def test_a_login_refusal_is_permanent(server: FakeServer) -> None:
    server.fail_open = paramiko.AuthenticationException("Authentication failed.")
    with pytest.raises(errors.PermanentError, match="login refused for distributor"):
        channel(server).read()


# -- configuration and secrets


def test_secrets_never_show_in_reprs_errors_or_logs(server: FakeServer,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ch = channel(server)
    server.fail_open = paramiko.AuthenticationException(f"bad password {CANARY}")
    with pytest.raises(errors.PermanentError) as refused:
        ch.read()
    links: list[FakeLink] = []
    ch._connector = lambda t: links.append(FakeLink(server, t)) or links[-1]
    server.fail_open = None
    ch.retry_at = float("-inf")
    ch.read()
    assert links[0].target.password == CANARY  # it did reach the login
    seen = [repr(ch), repr(ch.config), str(ch.config), repr(links[0].target),
            str(refused.value), caplog.text]
    assert not [s for s in seen if CANARY in s]
    assert "TEST_SFTP_PW" not in repr(ch.config)  # secret fields are left out of the repr


def test_a_missing_password_variable_is_named(server: FakeServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_SFTP_PW")
    clock = Clock()
    ch = channel(server, clock, wait=lambda state: 10.0)
    with pytest.raises(errors.ConfigError, match=r"^sftp://distributor@127\.0\.0\.1:2222/out: "
                                                 "environment variable TEST_SFTP_PW is not set"):
        ch.read()
    # Backed off like a network failure: a poller does not fail (and log) at every poll.
    clock.now += 9
    assert ch.read() == [] and server.opens == 0
    monkeypatch.setenv("TEST_SFTP_PW", CANARY)
    clock.now += 1
    assert ch.read() == [] and server.opens == 1  # connected; nothing listed yet


@pytest.mark.parametrize(("change", "problem"), [
    ({"password": None}, "exactly one of private_key_file and password"),
    ({"private_key_file": "/k"}, "exactly one of private_key_file and password"),
    ({"archive": None}, "exactly one of archive and delete_after_receive"),
    ({"delete_after_receive": True}, "exactly one of archive and delete_after_receive"),
    ({"host_key": "ssh-ed25519 not-base64!"}, "host_key"),
    ({"host_key": "AAAAC3NzaC1lZDI1NTE5"}, "host_key"),
    ({"hots": "x"}, "hots"),
])
def test_bad_settings_are_refused_by_name(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(errors.ConfigError, match=problem):
        registry.build_input("sftp", options(**change), partner="acme")


def test_a_known_hosts_line_with_its_host_name_is_accepted() -> None:
    assert parse_host_key(f"[sftp.example]:2222 {HOST_KEY_LINE}") == HOST_KEY


def test_a_key_file_open_to_others_is_refused(server: FakeServer, tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("not read")
    key.chmod(0o644)
    ch = channel(server, password=None, private_key_file=str(key))
    with pytest.raises(errors.ConfigError, match="permissions 0644 are too open"):
        ch.read()
    assert server.opens == 0


def test_a_connection_the_server_closed_between_polls_is_opened_again(server: FakeServer) -> None:
    server.put_file("/out/po.edi", b"ISA")
    ch = channel(server)
    assert ch.read() == []
    server.alive = False  # the partner restarted its server meanwhile
    assert ch.read() == []  # no error: a new connection, and a first sighting again
    server.alive = True
    assert [m.data for m in ch.read()] == [b"ISA"]
    assert server.opens == 2


def test_a_server_that_lets_us_in_but_fails_each_poll_backs_off_further(
        server: FakeServer) -> None:
    clock, waits = Clock(), []

    def wait(state: Any) -> float:
        waits.append(state.attempt_number)
        return 1.0

    def refuse(folder: str) -> list[SimpleNamespace]:
        raise PermissionError(13, "Permission denied")
    server.listdir_attr = refuse  # type: ignore[method-assign]
    ch = channel(server, clock=clock, wait=wait)
    for _ in range(3):
        with pytest.raises(errors.TransientError, match="Permission denied"):
            ch.read()
        clock.now = ch.retry_at
    assert (server.opens, waits) == (3, [1, 2, 3])
