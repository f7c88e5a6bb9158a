"""Polling inbound channels into the intake (gateway.pipeline.inbox): --once's drain of a
remote channel, failures logged and not raised, a failed commit re-offering what was read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from canonical import errors
from channels.base import InboundMessage
from gateway.pipeline import inbound, inbox, intake
from gateway.pipeline.context import Context
from gateway.store import db
from gateway.store.models import Message
from tests.pipeline_support import Site
from tests.store_support import migrated

pytestmark = pytest.mark.unit


class Scripted:
    """An Input that answers each read from a script: a list of names, or an error."""

    poll_interval = 5.0

    def __init__(self, *script: list[str] | Exception, then: list[str] | None = None) -> None:
        self.script = list(script)
        self.then = then or []
        self.reads = 0
        self.acked: list[str] = []
        self.closed = 0

    def __repr__(self) -> str:
        return "Scripted(sftp://acme)"

    def connect(self) -> None: ...

    def read(self) -> list[InboundMessage]:
        self.reads += 1
        step = self.script.pop(0) if self.script else self.then
        if isinstance(step, Exception):
            raise step
        return [InboundMessage("acme", n, f"ISA*{n}~".encode(), {"endpoint": "sftp://acme"})
                for n in step]

    def unchanged(self, message: InboundMessage) -> bool:
        return True

    def ack(self, message: InboundMessage) -> None:
        self.acked.append(message.source_name)

    def close(self) -> None:
        self.closed += 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    site = Site(tmp_path)
    migrated(site.store_url).dispose()
    c = Context.load(str(site.config))
    yield c
    c.close()


def _stored(ctx: Context) -> list[str]:
    with db.transaction(ctx.engine, write=False) as s:
        return [m.source_name for m in s.scalars(select(Message).order_by(Message.id))]


def test_drain_polls_until_two_polls_take_nothing(ctx: Context) -> None:
    # A remote file is seen on the first poll and taken on the second (stable across two).
    source, clock = Scripted([], ["a.edi", "b.edi"], [], ["c.edi"]), Clock()
    inbound.drain(ctx, source, clock=clock, sleep=clock.sleep)
    assert source.reads == 6  # the take at 4, then two quiet polls
    assert clock.slept == [5.0] * 5  # its own poll_interval between polls
    assert source.acked == ["a.edi", "b.edi", "c.edi"] == _stored(ctx)


def test_drain_stops_at_its_wait_when_files_keep_coming(ctx: Context) -> None:
    source, clock = Scripted(then=["same.edi"]), Clock()
    inbound.drain(ctx, source, wait=30, clock=clock, sleep=clock.sleep)
    assert source.reads == 7 and clock.now == 30  # at 0, 5, ... 30: the next would pass it


def test_a_failing_channel_is_logged_and_drained_without_raising(
        ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    source, clock = Scripted(then=[]), Clock()
    source.script = [errors.TransientError("sftp://acme: connecting: refused; next try in 1 s")]
    inbound.drain(ctx, source, clock=clock, sleep=clock.sleep)
    assert source.reads == 2
    assert "Scripted(sftp://acme): sftp://acme: connecting: refused" in caplog.text


def test_a_failed_commit_closes_the_channel_so_its_messages_come_again(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    source = Scripted(["a.edi"])

    def broken(*args: object, **kw: object) -> list[intake.Accepted]:
        raise errors.TransientError("database is locked")
    monkeypatch.setattr(intake, "accept", broken)
    assert inbound.poll_logged(ctx, source) == 0
    assert source.closed == 1 and source.acked == []


def test_the_gateway_schema_and_the_folder_channels_model_agree() -> None:
    """conf/gateway.yaml's inbound.folder is checked by the schema, documented by the model
    (docs/channels/folder.md): the same keys, the same defaults."""
    import json

    from channels.folder import FolderInputConfig
    from gateway import settings

    schema = json.loads(settings.SCHEMA_FILE.read_text("utf-8"))
    folder = schema["properties"]["inbound"]["properties"]["folder"]["properties"]
    fields = FolderInputConfig.model_fields
    assert set(folder) == set(fields)
    assert {k: v.get("default") for k, v in folder.items()} == {
        k: f.default for k, f in fields.items()}
    assert inbox.folder_config(settings.parse({}, {}, None)) == FolderInputConfig()
