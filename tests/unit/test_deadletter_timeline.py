"""A message's timeline built from plain records, in time and pipeline order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deadletter import timeline

pytestmark = pytest.mark.unit
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_message_that_was_parked_at_delivery_and_replayed() -> None:
    message = {"id": 1, "received_at": T0, "channel": "sftp://acme/inbox",
               "source_name": "po1.edi"}
    work = [
        {"id": 1, "kind": "validate", "status": "done", "attempts": 1, "created_at": T0,
         "updated_at": at(1)},
        {"id": 2, "kind": "ack", "status": "done", "attempts": 1, "created_at": at(1),
         "updated_at": at(2)},
        {"id": 3, "kind": "map", "status": "done", "attempts": 2, "created_at": at(1),
         "updated_at": at(3)},
        {"id": 4, "kind": "route", "status": "done", "attempts": 1, "created_at": at(3),
         "updated_at": at(4)},
        {"id": 5, "kind": "deliver", "status": "failed", "attempts": 1, "created_at": at(4),
         "updated_at": at(5), "last_error": "400 bad request"},
        {"id": 6, "kind": "deliver", "status": "pending", "attempts": 0, "created_at": at(20),
         "updated_at": at(20)},
    ]
    events = [{"event_id": "e1", "type": "com.edi-gateway.purchase_order.v1",
               "created_at": at(3)}]
    deliveries = [{"id": 7, "event_id": "e1", "destination": "erp:orders", "status": "pending",
                   "attempts": 1, "created_at": at(4), "updated_at": at(5),
                   "last_status_code": 400, "last_error": "bad request"}]
    dead = [{"id": 9, "stage": "deliver", "endpoint": "erp:orders", "attempts": 1,
             "reason": "400 bad request", "last_failed_at": at(5)}]
    audits = [{"at": at(20), "actor": "cli:ops", "action": "dead_letter.replay",
               "target": "dead_letter:9", "reason": "ERP fixed"}]
    got = timeline.build(message, work_items=work, events=events, deliveries=deliveries,
                         dead_letters=dead, audits=audits)
    assert [e.what for e in got] == [
        "received", "validated", "acked", "event", "mapped", "outbox", "routed", "attempts",
        "failed", "parked", "replayed", "deliver queued"]
    assert got[0].detail == "po1.edi on sftp://acme/inbox"
    assert got[4].detail == "map done (after 2 claims)"
    assert got[7].detail == "1 attempt(s) to erp:orders; last: 400 bad request"
    assert got[9].detail == "deliver at erp:orders after 1 attempt(s): 400 bad request"
    assert got[10].detail == "by cli:ops because ERP fixed"
    assert got[10].to_dict()["at"] == at(20).isoformat()


def test_after_a_rejected_file_is_parked_the_timeline_reads_as_what_happened() -> None:
    # Validation rejects the file: its item completes (the verdict and the 997 are its
    # work) in the transaction that parks the message, a moment after the dead letter.
    message = {"id": 1, "received_at": T0, "channel": "folder:var/inbox/acme",
               "source_name": "po.edi"}
    work = [
        {"id": 1, "kind": "validate", "status": "done", "attempts": 1, "created_at": T0,
         "updated_at": at(1.02)},
        {"id": 2, "kind": "ack", "status": "done", "attempts": 1, "created_at": at(1.02),
         "updated_at": at(1.2)},
        # The replay's item, written a few milliseconds before the replay's audit row.
        {"id": 3, "kind": "validate", "status": "pending", "attempts": 0,
         "created_at": at(9.98), "updated_at": at(9.98)},
    ]
    dead = [{"id": 4, "stage": "validate", "endpoint": "partner:acme", "attempts": 1,
             "reason": "rejected by validation: BEG03 is required", "last_failed_at": at(1)}]
    audits = [{"at": at(10), "actor": "cli:ops", "action": "dead_letter.replay",
               "target": "dead_letter:4", "reason": "partner resent",
               "details": {"work_item_id": 3, "stage": "validate"}}]
    got = timeline.build(message, work_items=work, dead_letters=dead, audits=audits)
    assert [(e.what, e.detail) for e in got] == [
        ("received", "po.edi on folder:var/inbox/acme"),
        ("parked", "validate at partner:acme after 1 attempt(s): rejected by validation: "
                   "BEG03 is required"),
        ("acked", "ack done"),
        ("replayed", "by cli:ops because partner resent"),
        ("validate queued", "the validate stage waits for a worker")]
    assert got[-1].at == at(10)


def test_partners_do_not_see_who_acted_or_why() -> None:
    message = {"id": 1, "received_at": T0}
    audits = [{"at": at(1), "actor": "api:alice", "action": "dead_letter.discard",
               "target": "dead_letter:2", "reason": "duplicate"}]
    (_, discarded) = timeline.build(message, audits=audits, show_actors=False)
    assert discarded.what == "discarded" and discarded.detail == ""


def test_a_delivered_event_and_a_dead_worker() -> None:
    message = {"id": 1, "received_at": T0}
    work = [{"id": 1, "kind": "deliver", "status": "done", "attempts": 1, "created_at": at(1),
             "updated_at": at(2)},
            {"id": 2, "kind": "map", "status": "dead", "attempts": 3, "created_at": at(1),
             "updated_at": at(9)}]
    deliveries = [{"id": 3, "event_id": "e1", "destination": "erp:orders",
                   "status": "delivered", "attempts": 1, "created_at": at(1),
                   "updated_at": at(2), "delivered_at": at(2)}]
    got = timeline.build(message, work_items=work, deliveries=deliveries)
    assert [(e.what, e.detail) for e in got] == [
        ("received", "? on ?"), ("outbox", "event e1 for erp:orders"),
        ("delivered", "to erp:orders"), ("failed", "map: its workers kept dying")]
