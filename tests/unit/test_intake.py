"""The intake (gateway.pipeline.intake.accept): one commit for what a channel hands over,
acks only after it, a repeat recognised, a refusal dead-lettered, large content by descriptor."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.base import InboundMessage
from gateway.pipeline import crash, intake
from gateway.pipeline.context import Context
from gateway.store import db, payloads, receive
from gateway.store.models import DeadLetter, Message, WorkItem
from tests.pipeline_support import Site
from tests.store_support import migrated

pytestmark = pytest.mark.unit


class Recorder:
    """An Input that only records its acks."""

    def __init__(self) -> None:
        self.acked: list[str] = []
        self.changed: set[str] = set()

    def connect(self) -> None: ...

    def read(self) -> list[InboundMessage]:
        return []

    def unchanged(self, message: InboundMessage) -> bool:
        return message.source_name not in self.changed

    def ack(self, message: InboundMessage) -> None:
        self.acked.append(message.source_name)

    def close(self) -> None: ...


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    site = Site(tmp_path)
    migrated(site.store_url).dispose()
    c = Context.load(str(site.config))
    yield c
    c.close()


def _msg(name: str, data: bytes, **kw: object) -> InboundMessage:
    return InboundMessage("acme", name, data, {"endpoint": "test:inbox"}, **kw)  # type: ignore[arg-type]


def test_new_then_repeat_each_acked_after_commit(ctx: Context) -> None:
    source = Recorder()
    first = intake.accept(ctx, [_msg("a.edi", b"ISA*one~"), _msg("b.csv", b"po,qty\n1,2\n")],
                          source)
    assert [a.outcome for a in first] == ["new", "new"]
    assert source.acked == ["a.edi", "b.csv"]
    again = intake.accept(ctx, [_msg("renamed.edi", b"ISA*one~")], source)
    assert again[0].outcome == "duplicate" and again[0].message_id == first[0].message_id
    with db.transaction(ctx.engine, write=False) as s:
        msgs = s.scalars(select(Message).order_by(Message.id)).all()
        items = s.scalars(select(WorkItem)).all()
    assert [(m.source_name, m.channel) for m in msgs] == [("a.edi", "test:inbox"),
                                                         ("b.csv", "test:inbox")]
    assert sorted(i.kind for i in items) == ["validate", "validate"]  # none for the repeat


def test_crash_before_commit_acks_nothing_and_stores_nothing(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    source = Recorder()

    def boom(name: str) -> None:
        if name == "after_download_before_commit":
            raise SystemExit("crash")
    monkeypatch.setattr(crash, "point", boom)
    with pytest.raises(SystemExit):
        intake.accept(ctx, [_msg("a.edi", b"ISA*one~")], source)
    assert source.acked == []
    with db.transaction(ctx.engine, write=False) as s:
        assert s.scalars(select(Message)).all() == []


def test_refused_is_dead_lettered_and_acked(ctx: Context) -> None:
    source = Recorder()
    got = intake.accept(ctx, [_msg("huge.edi", b"", refused="too large: 9 GB")], source)
    assert got[0].outcome == "refused" and source.acked == ["huge.edi"]
    with db.transaction(ctx.engine, write=False) as s:
        (dl,) = s.scalars(select(DeadLetter)).all()
        assert "huge.edi: refused unread: too large: 9 GB" in dl.reason
        assert dl.endpoint == "test:inbox"
        assert s.scalars(select(Message)).all() == []


def test_large_content_by_descriptor_is_stored_in_parts(ctx: Context, tmp_path: Path) -> None:
    data = os.urandom(payloads.PART_BYTES) * 2 + b"tail"
    f = tmp_path / "big.edi"
    f.write_bytes(data)
    fd = os.open(f, os.O_RDONLY)
    try:
        (got,) = intake.accept(ctx, [_msg("big.edi", b"", fd=fd)])
    finally:
        os.close(fd)
    with db.transaction(ctx.engine, write=False) as s:
        msg = s.get(Message, got.message_id)
        assert msg is not None
        assert receive.payload(s, msg.payload_sha256) == data


def test_a_message_changed_since_its_read_is_left_out_and_not_acked(ctx: Context) -> None:
    source = Recorder()
    source.changed.add("growing.edi")
    got = intake.accept(ctx, [_msg("growing.edi", b"ISA*half"), _msg("whole.edi", b"ISA*x~")],
                        source)
    assert [a.message.source_name for a in got] == ["whole.edi"]
    assert source.acked == ["whole.edi"]
    with db.transaction(ctx.engine, write=False) as s:
        assert [m.source_name for m in s.scalars(select(Message))] == ["whole.edi"]
