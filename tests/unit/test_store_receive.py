"""Receiving on SQLite: idempotent messages, kept payloads, the ISA13 duplicate check (E1)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from gateway.store import db, receive
from gateway.store.models import Interchange, Message, Payload
from tests.store_support import migrated, now_after

pytestmark = pytest.mark.unit

RAW = b"ISA*00*...~IEA*1*000000905~"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return migrated(f"sqlite:///{tmp_path / 'store.db'}")


def _receive(engine: Engine, data: bytes = RAW, partner: str = "acme",
             name: str = "po1.edi") -> receive.Received:
    with db.transaction(engine) as s:
        return receive.receive(s, partner=partner, channel="sftp://acme/inbox",
                               source_name=name, data=data)


def test_the_same_bytes_from_the_same_partner_are_one_message(engine: Engine) -> None:
    first = _receive(engine)
    again = _receive(engine, name="po1-renamed.edi")
    assert first.new and not again.new
    assert again.message.id == first.message.id
    assert again.message.source_name == "po1.edi"  # the first arrival is what is kept


def test_other_bytes_or_another_partner_make_new_messages(engine: Engine) -> None:
    a = _receive(engine)
    b = _receive(engine, data=RAW + b"\n")
    c = _receive(engine, partner="globex")
    assert a.new and b.new and c.new
    assert len({a.message.id, b.message.id, c.message.id}) == 3
    with db.transaction(engine, write=False) as s:
        # Two partners sending the same bytes share one payload row.
        assert s.scalar(select(func.count()).select_from(Payload)) == 2
        assert s.scalar(select(func.count()).select_from(Message)) == 3


def test_the_raw_payload_is_kept_by_its_hash(engine: Engine) -> None:
    got = _receive(engine)
    assert got.message.payload_sha256 == receive.sha256(RAW)
    with db.transaction(engine, write=False) as s:
        assert receive.payload(s, got.message.payload_sha256) == RAW
        assert s.get_one(Payload, receive.sha256(RAW)).size == len(RAW)


def _interchange(engine: Engine, isa13: str, content: bytes, at: float = 0, *,
                 window: timedelta = receive.DEFAULT_WINDOW, sender: str = "ACME    ",
                 message_id: int = 1) -> Interchange:
    with db.transaction(engine) as s:
        return receive.record_interchange(
            s, message_id=message_id, partner="acme", sender_qualifier="ZZ",
            sender_id=sender, receiver_qualifier="ZZ", receiver_id="US             ",
            isa13=isa13, content=content, window=window, now=now_after(at))


def test_a_new_control_number_is_accepted(engine: Engine) -> None:
    _receive(engine)
    assert _interchange(engine, "000000905", b"one").status == "accepted"
    assert _interchange(engine, "000000906", b"two").status == "accepted"


def test_the_same_control_number_and_content_is_a_duplicate(engine: Engine) -> None:
    _receive(engine)
    first = _interchange(engine, "000000905", b"one")
    again = _interchange(engine, "000000905", b"one", at=60)
    assert again.status == "duplicate"
    assert again.duplicate_of_id == first.id


def test_the_same_control_number_with_other_content_is_quarantined(engine: Engine) -> None:
    _receive(engine)
    first = _interchange(engine, "000000905", b"one")
    other = _interchange(engine, "000000905", b"two", at=60)
    assert other.status == "quarantined"
    assert other.duplicate_of_id == first.id
    # A resend of the quarantined copy is a duplicate of it, not a second quarantine.
    resent = _interchange(engine, "000000905", b"two", at=120)
    assert (resent.status, resent.duplicate_of_id) == ("duplicate", other.id)
    with db.transaction(engine, write=False) as s:
        shown = s.scalars(select(Interchange).where(Interchange.status == "quarantined")).all()
    assert [i.id for i in shown] == [other.id]  # what an operator's list shows


def test_a_control_number_reused_after_the_window_is_new(engine: Engine) -> None:
    _receive(engine)
    _interchange(engine, "000000905", b"one", window=timedelta(days=1))
    later = _interchange(engine, "000000905", b"two", at=2 * 86400, window=timedelta(days=1))
    assert later.status == "accepted"


def test_the_check_is_per_sender_and_receiver(engine: Engine) -> None:
    _receive(engine)
    _interchange(engine, "000000905", b"one", sender="ACME")
    assert _interchange(engine, "000000905", b"two", sender="ACME-EU").status == "accepted"
    # ISA06 is padded to 15 characters; the padding is not part of the identity.
    assert _interchange(engine, "000000905", b"one", sender="ACME           ").status \
        == "duplicate"


def test_receive_many_is_receive_for_each_in_a_few_statements(engine: Engine) -> None:
    known = _receive(engine, data=b"seen before")
    large = b"x" * (receive.payloads.PART_BYTES + 10)
    items = [receive.Incoming("acme", "webhook:/a", f"m{n}", data) for n, data in enumerate(
        [b"one", b"two", b"one", b"seen before", large])]
    items.append(receive.Incoming("globex", "webhook:/g", "m5", b"one"))  # another partner
    with db.transaction(engine) as s:
        got = receive.receive_many(s, items)
    ids = [i for i, _ in got]
    assert [new for _, new in got] == [True, True, False, False, True, True]
    assert ids[0] == ids[2] and ids[3] == known.message.id
    assert len(set(ids)) == 5  # one, two, seen before, large, globex's one
    with db.transaction(engine, write=False) as s:
        assert s.scalar(select(func.count()).select_from(Payload)) == 4
        assert receive.payload(s, receive.sha256(large)) == large  # kept in parts, whole
        assert s.get(Message, ids[5]).partner == "globex"
