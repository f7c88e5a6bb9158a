"""Small files read in pipelined groups (channels/sftp_batch.py), against a real OpenSSH sshd:
the same checks as for a file fetched alone, and an archive that never replaces a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from canonical import errors
from channels import sftp_batch
from tests.integration.test_sftp_sshd import Clock, Drop, names
from tests.sshd_support import SshServer

pytestmark = pytest.mark.integration


@pytest.fixture
def drop(sshd: SshServer, tmp_path: Path) -> Drop:
    return Drop(sshd, tmp_path / "remote")


def test_many_files_of_every_size_are_handed_over_whole_and_spooled_in_groups(
        drop: Drop) -> None:
    sizes = [0, 1, sftp_batch.CHUNK - 1, sftp_batch.CHUNK, sftp_batch.CHUNK + 1,
             sftp_batch.SMALL, sftp_batch.SMALL + 1, *[2000 + n for n in range(150)]]
    files = {f"po{n:04d}.edi": os.urandom(size) for n, size in enumerate(sizes)}
    for name, data in files.items():
        (drop.inbox / name).write_bytes(data)
    ch = drop.channel()
    try:
        assert ch.read() == []
        got = ch.read()
        assert {m.source_name: m.data for m in got} == files
        # Pipelined groups share a spool file each (fsynced once); the large one has its own.
        spooled = names(drop.spool)
        assert 1 < len(spooled) < len(files) // 10
        for m in got:
            ch.ack(m)
        assert (names(drop.inbox), names(drop.spool)) == ([], [])
        assert names(drop.archive) == sorted(files)
    finally:
        ch.close()


def test_a_file_that_grows_or_goes_between_listing_and_reading_is_not_handed_over(
        drop: Drop, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        (drop.inbox / f"po{n}.edi").write_bytes(b"ISA*" + bytes([48 + n]) * 100)
    real = sftp_batch.read_group

    def partner_meanwhile(sftp: Any, files: Any) -> Any:
        with (drop.inbox / "po1.edi").open("ab") as f:
            f.write(b"*more")  # still being written after the listing
        (drop.inbox / "po3.edi").unlink()  # taken back
        return real(sftp, files)

    ch = drop.channel()
    try:
        assert ch.read() == []
        monkeypatch.setattr(sftp_batch, "read_group", partner_meanwhile)
        got = ch.read()
        assert sorted(m.source_name for m in got) == ["po0.edi", "po2.edi", "po4.edi"]
        monkeypatch.setattr(sftp_batch, "read_group", real)
        assert ch.read() == []  # po1 starts over: seen once since it changed
        [m] = ch.read()
        assert (m.source_name, m.data) == ("po1.edi", b"ISA*" + b"1" * 100 + b"*more")
    finally:
        ch.close()


def test_a_file_longer_than_listed_is_caught_by_the_read_past_its_listed_end(
        drop: Drop) -> None:
    path = drop.inbox / "po.edi"
    path.write_bytes(b"ISA*first")
    size = path.stat().st_size
    ch = drop.channel()
    ch.connect()
    try:
        # Listed 3 bytes shorter than it is: the read past the listed end finds more.
        [short] = sftp_batch.read_group(ch._sftp, [(str(path), size - 3)])
        [exact] = sftp_batch.read_group(ch._sftp, [(str(path), size)])
    finally:
        ch.close()
    assert (short.whole, short.data) == (False, b"ISA*fi")
    assert (exact.whole, exact.data, exact.after[0]) == (True, b"ISA*first", size)


def test_the_archive_never_replaces_a_file_of_the_same_name(drop: Drop) -> None:
    ch = drop.channel()
    try:
        for content in (b"ISA*first", b"ISA*second"):
            (drop.inbox / "po.edi").write_bytes(content)
            assert ch.read() == []
            [m] = ch.read()
            ch.ack(m)
    finally:
        ch.close()
    archived = sorted(drop.archive.iterdir())
    assert len(archived) == 2 and archived[0].name == "po.edi"
    assert archived[1].name.startswith("po.edi.")  # the second under a timestamped name
    assert sorted(p.read_bytes() for p in archived) == [b"ISA*first", b"ISA*second"]


def test_a_server_killed_mid_group_is_a_transient_error_and_the_next_polls_take_all(
        drop: Drop, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {f"po{n:03d}.edi": os.urandom(3000 + n) for n in range(100)}
    for name, data in files.items():
        (drop.inbox / name).write_bytes(data)
    real_take = sftp_batch._Answers.take
    taken: list[int] = []

    def take_then_kill(self: Any, num: int) -> Any:
        taken.append(num)
        if len(taken) == 40:  # amid the first group's reads
            drop.server.kill()
        return real_take(self, num)

    clock = Clock()
    ch = drop.channel(clock)
    assert ch.read() == []
    monkeypatch.setattr(sftp_batch._Answers, "take", take_then_kill)
    with pytest.raises(errors.TransientError, match="polling the inbox"):
        ch.read()
    assert (len(names(drop.inbox)), names(drop.archive), names(drop.spool)) == (100, [], [])

    monkeypatch.setattr(sftp_batch._Answers, "take", real_take)
    drop.server.start()
    clock.now = ch.retry_at
    assert ch.read() == []  # a new connection sees each file once more before taking it
    got = ch.read()
    assert {m.source_name: m.data for m in got} == files
    for m in got:
        ch.ack(m)
    assert (names(drop.inbox), names(drop.spool), len(names(drop.archive))) == ([], [], 100)
    ch.close()
