"""The portal's tables and its history query on a real PostgreSQL (the migration, the
aggregate FILTERs, other partners kept apart, downgrade)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from gateway.store import db, migrate, receive, uploads, users
from gateway.store.models import (
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Event,
    Message,
    MessageStatus,
)
from tests.store_support import migrated, schema_diff

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = migrated(pg_url)
    yield engine
    engine.dispose()


def _upload(engine: Engine, partner: str, who: str, data: bytes, name: str) -> int:
    with db.transaction(engine) as s:
        got = receive.receive(s, partner=partner, channel=f"portal:{who}",
                              source_name=f"gen-{name}", data=data)
        uploads.record(s, message_id=got.message.id, partner=partner, username=who,
                       original_name=name, size=len(data))
        return got.message.id


def test_history_on_postgres(engine: Engine) -> None:
    assert schema_diff(engine) == []
    with db.transaction(engine) as s:
        users.add(s, username="ana", partner="evergreen", password_hash="h")
    delivered = _upload(engine, "evergreen", "ana", b"a,b\n1,2\n", "one.csv")
    dead = _upload(engine, "evergreen", "ana", b"a,b\n3,4\n", "two.csv")
    _upload(engine, "evergreen", "ana", b"a,b\n5,6\n", "three.csv")
    theirs = _upload(engine, "brightline", "ben", b"a,b\n1,2\n", "theirs.csv")
    with db.transaction(engine) as s:
        s.get_one(Message, delivered).status = MessageStatus.DONE
        s.get_one(Message, dead).status = MessageStatus.DONE
        for ev, mid in (("e1", delivered), ("e2", dead)):
            s.add(Event(event_id=ev, message_id=mid, type="ship_notice", partner="evergreen",
                        envelope={}))
        s.flush()
        s.add(Delivery(event_id="e1", destination="erp", status=DeliveryStatus.DELIVERED))
        d2 = Delivery(event_id="e2", destination="erp", status=DeliveryStatus.DEAD)
        s.add(d2)
        s.flush()
        s.add(DeadLetter(delivery_id=d2.id, stage="deliver", reason="erp said 400"))
    with db.transaction(engine, write=False) as s:
        got = {u.name: (u.status, u.reason) for u in uploads.history(s, "evergreen")}
        assert uploads.one(s, "evergreen", theirs) is None
        assert [u.name for u in uploads.history(s, "brightline")] == ["theirs.csv"]
    assert got == {"one.csv": ("delivered", ""), "two.csv": ("dead-lettered", "erp said 400"),
                   "three.csv": ("accepted", "")}


def test_the_portal_tables_go_down_and_up_again(engine: Engine, pg_url: str) -> None:
    engine.dispose()
    migrate.command.downgrade(migrate.config(pg_url), "0005")
    assert migrate.current(pg_url) == "0005"
    migrate.upgrade(pg_url)
    assert migrate.current(pg_url) == migrate.head()
