"""Replay plans (which stage, why, or why not) and the dry run's per-path event diff."""

from __future__ import annotations

import pytest

from deadletter import replay
from deadletter.replay import Difference, NotReplayable

pytestmark = pytest.mark.unit


def test_a_deliver_replay_resets_the_delivery_and_names_the_endpoint() -> None:
    p = replay.plan(5, stage="deliver", status="parked", message_id=1, delivery_id=9,
                    endpoint="erp:orders")
    assert (p.stage, p.message_id, p.delivery_id, p.reset_delivery) == ("deliver", 1, 9, True)
    assert "erp:orders" in p.why and "attempts so far are kept" in p.why


@pytest.mark.parametrize("stage", ["validate", "map", "route", "ack"])
def test_other_stages_re_enter_with_the_message(stage: str) -> None:
    p = replay.plan(5, stage=stage, status="parked", message_id=1, delivery_id=None)
    assert p.stage == stage and not p.reset_delivery and p.why


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"stage": "map", "status": "replayed", "message_id": 1}, "is replayed, not parked"),
    ({"stage": "map", "status": "discarded", "message_id": 1}, "is discarded"),
    ({"stage": "parse", "status": "parked", "message_id": 1}, "not one the pipeline runs"),
    ({"stage": "deliver", "status": "parked", "message_id": 1}, "without a delivery"),
    ({"stage": "map", "status": "parked", "message_id": None}, "without a message"),
])
def test_what_cannot_be_replayed_says_why(kwargs: dict, says: str) -> None:
    kwargs.setdefault("delivery_id", None)
    with pytest.raises(NotReplayable) as caught:
        replay.plan(3, **kwargs)
    assert says in str(caught.value) and "dead letter 3" in str(caught.value)


OLD = {"id": "e1", "time": "2024-03-01T12:00:00.000Z",
       "data": {"po_number": "PO1", "lines": [{"qty": 1, "uom": "EA"}, {"qty": 2}],
                "notes": "x"}}


def test_diff_names_each_path_that_changed() -> None:
    new = {"id": "e1", "time": "2024-03-02T00:00:00.000Z",
           "data": {"po_number": "PO1", "lines": [{"qty": 1.0, "uom": "CA"}, {"qty": 2},
                                                   {"qty": 3}],
                    "ship_to": {"name": "DC 4"}}}
    got = replay.diff(OLD, new, ignore=("time",))
    assert got == [
        Difference("data.lines[0].uom", "changed", "EA", "CA"),
        Difference("data.lines[2]", "added", new={"qty": 3}),
        Difference("data.notes", "removed", old="x"),
        Difference("data.ship_to", "added", new={"name": "DC 4"}),
    ]
    assert replay.render(got).splitlines() == [
        '~ data.lines[0].uom: "EA" -> "CA"', '+ data.lines[2]: {"qty": 3}',
        '- data.notes: "x"', '+ data.ship_to: {"name": "DC 4"}']


def test_no_differences_and_type_changes() -> None:
    assert replay.render(replay.diff(OLD, OLD)) == "no differences"
    assert replay.diff({"a": True}, {"a": 1}) == [Difference("a", "changed", True, 1)]
    assert replay.diff({"a": "1"}, {"a": 1})[0].kind == "changed"
    assert replay.diff([1], {"a": 1})[0].path == "(document)"


def test_long_diffs_are_cut_with_a_count() -> None:
    got = replay.diff({"a": list(range(300))}, {"a": []})
    text = replay.render(got, limit=10)
    assert text.splitlines()[-1] == "... and 290 more"
