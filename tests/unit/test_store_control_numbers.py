"""Outbound control numbers in the store: sequential, per scope and kind, never reused (E5)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from canonical.errors import OutboundDataError
from gateway.store import db
from gateway.store.models import ControlNumber
from gateway.store.sequences import StoreControlNumbers
from mappings.x12.control_numbers import ControlNumbers
from mappings.x12.writer import MAX_CONTROL_NUMBER
from tests.store_support import migrated, take_numbers

pytestmark = pytest.mark.unit


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrated(url).dispose()
    return url


@pytest.fixture
def engine(url: str) -> Engine:
    return db.make_engine(url)


def test_it_meets_the_protocol_and_counts_per_kind_and_scope(engine: Engine) -> None:
    us = StoreControlNumbers(engine, scope="US")
    assert isinstance(us, ControlNumbers)
    assert [us.next_interchange(), us.next_interchange(), us.next_group(), us.next_set()] \
        == [1, 2, 1, 1]
    assert StoreControlNumbers(engine, scope="US-EU").next_interchange() == 1
    assert StoreControlNumbers(engine, scope="US").next_interchange() == 3


def test_start_moves_the_sequence_forward_never_back(engine: Engine) -> None:
    assert StoreControlNumbers(engine, start=500).next_interchange() == 500
    assert StoreControlNumbers(engine, start=1).next_interchange() == 501
    assert StoreControlNumbers(engine, start=900).next_interchange() == 900


def test_a_used_up_sequence_is_refused_not_wrapped(engine: Engine) -> None:
    numbers = StoreControlNumbers(engine)
    numbers.next_set()
    with db.transaction(engine) as s:
        s.execute(update(ControlNumber).values(last=MAX_CONTROL_NUMBER - 1))
    assert numbers.next_set() == MAX_CONTROL_NUMBER
    for _ in range(2):
        with pytest.raises(OutboundDataError, match="used up"):
            numbers.next_set()


def test_two_processes_never_get_the_same_number(url: str) -> None:
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        batches = pool.starmap(take_numbers, [(url, 50)] * 2)
    taken = [n for b in batches for n in b]
    assert sorted(taken) == list(range(1, 101))
    assert all(b == sorted(b) for b in batches)
