"""The folder inbox takes regular files only, whole and settled (issue #11, item 3).

Links, FIFOs, sockets and folders in a partner's folder are refused unread; a file is
taken once it has stayed the same across polls for stable_for seconds (on a fake clock)
and nobody has it open for writing; a file written to after it was read is taken again,
its new content as a new message.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from canonical import errors
from channels import local_files
from gateway.pipeline import crash, intake
from gateway.pipeline.context import Context
from gateway.pipeline.inbox import FolderInbox
from gateway.store import db, receive
from gateway.store.models import DeadLetter, Message
from tests.pipeline_support import Site
from tests.store_support import migrated

pytestmark = pytest.mark.unit

HALF, REST = b"ISA*00*half of a file~", b"GS*the rest of it~IEA*1*000000001~"
CANARY = b"root-only-canary-3f9a1c: the first bytes a partner must never see"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_inbox(tmp_path: Path) -> Iterator[Callable[..., FolderInbox]]:
    contexts: list[Context] = []

    def make(stable_for: float = 0, clock: Callable[[], float] | None = None,
             **extra: object) -> FolderInbox:
        site = Site(tmp_path, inbound={"folder": {"stable_for": stable_for,
                                                  "root": str(tmp_path / "var" / "inbox")}},
                    **extra)
        migrated(site.store_url).dispose()
        ctx = Context.load(str(site.config))
        contexts.append(ctx)
        inbox = FolderInbox(ctx, clock=clock) if clock else FolderInbox(ctx)
        inbox.prepare()
        return inbox

    yield make
    for ctx in contexts:
        ctx.close()


def folder(inbox: FolderInbox) -> Path:
    return inbox.root / "acme"


def stored(inbox: FolderInbox) -> list[bytes]:
    """The payload of every message, oldest first."""
    with db.transaction(inbox.ctx.engine, write=False) as s:
        return [receive.payload(s, m.payload_sha256)
                for m in s.scalars(select(Message).order_by(Message.id))]


def reasons(inbox: FolderInbox) -> list[str]:
    with db.transaction(inbox.ctx.engine, write=False) as s:
        return [d.reason for d in s.scalars(select(DeadLetter).order_by(DeadLetter.id))]


def take(inbox: FolderInbox, path: Path, seen: local_files.Signature) -> list:
    """What the inbox does with one file its poll found stable: hand it over, accept it."""
    got = inbox.input.take("acme", path, seen)
    return intake.accept(inbox.ctx, [got] if got else [], inbox.input)


def poll_guarded(inbox: FolderInbox) -> list:
    """poll() in a thread, so a read that blocks fails the test instead of hanging it."""
    result: list = []
    t = threading.Thread(target=lambda: result.append(inbox.poll()), daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "poll() blocked"
    return result[0]


def test_a_symlink_to_a_file_outside_is_refused_unread(tmp_path: Path, make_inbox,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    inbox = make_inbox()
    secret = tmp_path / "root-only.txt"
    secret.write_bytes(CANARY)
    (folder(inbox) / "x.edi").symlink_to(secret)
    [taken] = poll_guarded(inbox)
    assert taken.outcome == "refused"
    assert stored(inbox) == []
    [reason] = reasons(inbox)
    assert reason.startswith("x.edi: refused unread: not a regular file: x.edi is a symbolic"
                             f" link; moved to {folder(inbox) / '.rejected'}/")
    assert "x.edi is a symbolic link" in caplog.text
    moved = folder(inbox) / ".rejected" / "x.edi"
    assert moved.is_symlink() and secret.read_bytes() == CANARY  # the link moved, not its file
    db_file = Path(inbox.ctx.settings.store_url.removeprefix("sqlite:///"))
    for f in db_file.parent.glob(db_file.name + "*"):
        assert CANARY[:20] not in f.read_bytes()


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _socket(p: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()


def _folder(p: Path) -> None:
    p.mkdir()
    (p / "inner.edi").write_bytes(CANARY)


@pytest.mark.parametrize(("make", "kind"), [(_fifo, "a FIFO"), (_socket, "a socket"),
                                            (_folder, "a directory")])
def test_other_kinds_of_file_are_refused_without_reading_them(
        make_inbox, make: Callable[[Path], None], kind: str) -> None:
    inbox = make_inbox()
    make(folder(inbox) / "odd.edi")
    [taken] = poll_guarded(inbox)
    assert taken.outcome == "refused"
    assert stored(inbox) == []
    assert reasons(inbox)[0].startswith(f"odd.edi: refused unread: not a regular file: odd.edi"
                                        f" is {kind}; moved to")
    assert os.path.lexists(folder(inbox) / ".rejected" / "odd.edi")
    assert poll_guarded(inbox) == []  # refused once, not at every poll


def test_a_file_swapped_for_a_link_after_the_poll_saw_it_is_refused(tmp_path: Path,
                                                                     make_inbox) -> None:
    inbox = make_inbox()
    secret = tmp_path / "root-only.txt"
    secret.write_bytes(CANARY)
    path = folder(inbox) / "x.edi"
    path.write_bytes(HALF)
    seen = local_files.Signature.of(path.lstat())
    path.unlink()
    path.symlink_to(secret)  # between the poll's lstat and the open
    [taken] = take(inbox, path, seen)
    assert taken.outcome == "refused" and stored(inbox) == []
    assert "x.edi is a symbolic link" in reasons(inbox)[0]


def test_a_fifo_swapped_in_after_the_poll_is_refused_without_blocking(make_inbox) -> None:
    inbox = make_inbox()
    path = folder(inbox) / "x.edi"
    path.write_bytes(HALF)
    seen = local_files.Signature.of(path.lstat())
    path.unlink()
    os.mkfifo(path)
    result: list = []
    t = threading.Thread(target=lambda: result.append(take(inbox, path, seen)), daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "taking it blocked on a FIFO"
    assert [r.outcome for r in result[0]] == ["refused"]


def test_a_linked_partner_folder_is_not_read(tmp_path: Path, make_inbox) -> None:
    inbox = make_inbox()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.edi").write_bytes(CANARY)
    (inbox.root / "globex").rmdir()
    (inbox.root / "globex").symlink_to(outside, target_is_directory=True)
    assert poll_guarded(inbox) == []
    assert stored(inbox) == [] and (outside / "x.edi").exists()


@pytest.mark.parametrize("archive", [".done", ".rejected"])
def test_an_archive_folder_planted_as_a_link_is_set_aside(tmp_path: Path, make_inbox,
                                                          archive: str) -> None:
    inbox = make_inbox()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (folder(inbox) / archive).symlink_to(outside, target_is_directory=True)
    (folder(inbox) / "po.edi").write_bytes(HALF)
    (folder(inbox) / "odd.edi").symlink_to(tmp_path / "nowhere")
    assert sorted(t.outcome for t in poll_guarded(inbox)) == ["new", "refused"]
    assert list(outside.iterdir()) == []  # nothing was moved through the link
    real = folder(inbox) / archive
    assert real.is_dir() and not real.is_symlink()
    assert len(list(folder(inbox).glob(f"{archive}.*.not-a-folder"))) == 1
    assert (folder(inbox) / ".done" / "po.edi").read_bytes() == HALF
    assert (folder(inbox) / ".rejected" / "odd.edi").is_symlink()


def test_a_name_taken_in_the_archive_is_not_overwritten(make_inbox) -> None:
    inbox = make_inbox()
    (folder(inbox) / "po.edi").write_bytes(HALF)
    inbox.poll()
    (folder(inbox) / "po.edi").write_bytes(REST)
    inbox.poll()
    kept = sorted(p.read_bytes() for p in (folder(inbox) / ".done").iterdir())
    assert kept == sorted([HALF, REST])


def test_a_file_is_taken_once_it_stayed_the_same_for_stable_for(make_inbox) -> None:
    clock = Clock()
    inbox = make_inbox(stable_for=2, clock=clock)
    path = folder(inbox) / "po.edi"
    path.write_bytes(HALF)
    assert inbox.poll() == []  # first seen now
    clock.now += 1.5
    assert inbox.poll() == []
    with open(path, "ab") as f:
        f.write(REST)
    clock.now += 1.0  # 2.5 s after it was first seen, but it changed 1 s ago
    assert inbox.poll() == []
    clock.now += 1.0
    assert inbox.poll() == []  # changed 2 s ago by the clock, seen once since
    clock.now += 1.0
    [taken] = inbox.poll()
    assert taken.outcome == "new"
    assert stored(inbox) == [HALF + REST]


def test_a_file_growing_past_the_size_limit_is_refused_once_it_settles(make_inbox) -> None:
    clock = Clock()
    inbox = make_inbox(stable_for=2, clock=clock, limits={"max_input_bytes": len(HALF)})
    path = folder(inbox) / "po.edi"
    path.write_bytes(HALF + REST)
    assert inbox.poll() == []  # perhaps still being written: not judged yet
    assert path.exists() and reasons(inbox) == []
    clock.now += 2
    [taken] = inbox.poll()
    assert taken.outcome == "refused"
    assert reasons(inbox)[0].startswith("po.edi: refused unread: too large: po.edi")


def test_a_file_open_for_writing_is_not_taken(make_inbox) -> None:
    inbox = make_inbox(stable_for=0)
    path = folder(inbox) / "po.edi"
    with open(path, "wb") as writer:
        writer.write(HALF)
        writer.flush()
        assert inbox.poll() == []
        assert inbox.poll() == []
        writer.write(REST)
    [taken] = inbox.poll()
    assert taken.outcome == "new"
    assert stored(inbox) == [HALF + REST]
    assert (folder(inbox) / ".done" / "po.edi").read_bytes() == HALF + REST


def _grow_at(point: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Append REST to path when the inbox reaches crash point `point` (once)."""
    done: list[bool] = []

    def grow(name: str) -> None:
        if name == point and not done:
            done.append(True)
            with open(path, "ab") as f:
                f.write(REST)

    monkeypatch.setattr(crash, "point", grow)


def test_a_file_written_to_between_its_read_and_the_commit_is_taken_whole_later(
        make_inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = make_inbox(stable_for=0)
    path = folder(inbox) / "po.edi"
    path.write_bytes(HALF)
    _grow_at("after_download_before_commit", path, monkeypatch)
    assert inbox.poll() == []  # the half is not stored
    [taken] = inbox.poll()
    assert taken.outcome == "new"
    assert stored(inbox) == [HALF + REST]
    assert (folder(inbox) / ".done" / "po.edi").read_bytes() == HALF + REST


def test_a_file_written_to_after_it_was_received_is_received_again_whole(
        make_inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = make_inbox(stable_for=0)
    path = folder(inbox) / "po.edi"
    path.write_bytes(HALF)
    _grow_at("after_commit_before_archive", path, monkeypatch)
    [first] = inbox.poll()
    assert path.exists()  # not archived: what is there now is not what was stored
    [second] = inbox.poll()
    assert (first.outcome, second.outcome) == ("new", "new")
    assert stored(inbox) == [HALF, HALF + REST]
    assert (folder(inbox) / ".done" / "po.edi").read_bytes() == HALF + REST
    assert not path.exists()


def test_archived_files_are_private(make_inbox) -> None:
    inbox = make_inbox()
    path = folder(inbox) / "po.edi"
    path.write_bytes(HALF)
    path.chmod(0o644)
    inbox.poll()
    done = folder(inbox) / ".done"
    assert stat.S_IMODE((done / "po.edi").stat().st_mode) == 0o600
    assert stat.S_IMODE(done.stat().st_mode) == 0o700


def test_open_for_writing_sees_only_writers(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    st = path.stat()
    key = (st.st_dev, st.st_ino)
    with open(path, "rb"):
        assert local_files.open_for_writing([key]) == set()
    with open(path, "ab"):
        assert local_files.open_for_writing([key]) == {key}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_folder_input_hands_over_a_batch_at_a_time_each_file_once(tmp_path: Path) -> None:
    from channels.folder import FolderInput, FolderInputConfig

    root = tmp_path / "inbox"
    (root / "acme").mkdir(parents=True)
    for n in range(5):
        (root / "acme" / f"po{n}.edi").write_bytes(HALF + bytes([48 + n]))
    source = FolderInput(FolderInputConfig(root=str(root), stable_for=0, batch=2),
                         max_bytes=1000, large_bytes=100)
    fds = _open_fds()
    first, second = source.read(), source.read()  # none acked: never the same file twice
    assert [m.source_name for m in first + second] == ["po0.edi", "po1.edi", "po2.edi",
                                                       "po3.edi"]
    assert first[0].endpoint == f"folder:{root / 'acme'}" and first[0].data == HALF + b"0"
    assert _open_fds() == fds + 4  # each held open until its ack, to check it is unchanged
    source.ack(first[0])
    assert (root / "acme" / ".done" / "po0.edi").exists()
    with pytest.raises(errors.PermanentError, match="not a file this channel handed over"):
        source.ack(first[0])
    source.close()  # the rest let go: offered again, descriptors closed
    assert _open_fds() == fds
    assert [m.source_name for m in source.read()] == ["po1.edi", "po2.edi"]
    source.close()


def test_a_large_file_is_handed_over_by_descriptor(tmp_path: Path) -> None:
    from channels.folder import FolderInput, FolderInputConfig

    root = tmp_path / "inbox"
    (root / "acme").mkdir(parents=True)
    (root / "acme" / "big.edi").write_bytes(b"x" * 150)
    (root / "acme" / "small.edi").write_bytes(b"x" * 100)
    source = FolderInput(FolderInputConfig(root=str(root), stable_for=0),
                         max_bytes=1000, large_bytes=100)
    big, small = source.read()
    assert (big.data, os.pread(big.fd, 200, 0)) == (b"", b"x" * 150)  # type: ignore[arg-type]
    assert (small.fd, small.data) == (None, b"x" * 100)
    source.close()
