"""One contract for every registered output, run against real parts on this machine."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from canonical import envelope, errors
from channels import base, config, registry
from channels.base import DeliveryReceipt, Input, Output
from channels.erp_sim import SimulatorHandle, running_simulator

pytestmark = pytest.mark.unit

WHEN = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)
PO = {"po_number": "PO1", "lines": [{"line_number": "1", "quantity": {"value": "1", "unit": "EA"}}]}


def event(n: int = 1) -> envelope.Event:
    keys = {"isa13": "000000101", "gs06": "101", "st02": f"{n:04d}"}
    return envelope.make_event("purchase_order", PO, partner="acme", keys=keys, time=WHEN)


def unwritable_event() -> envelope.Event:
    return dataclasses.replace(event(99), data={"po_number": float("nan")})


@dataclass
class Rig:
    """One output kind wired to a real destination, and ways to break it."""

    options: dict[str, Any]
    effects: Callable[[], int]
    # Each returns the options of an output that will fail that way, and the event to send.
    transient: Callable[[], tuple[dict[str, Any], envelope.Event]]
    permanent: Callable[[], tuple[dict[str, Any], envelope.Event]]


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    with running_simulator() as sim:
        yield sim


def http_rig(tmp_path: Path, sim: SimulatorHandle) -> Rig:
    options = {"url": sim.events_url, "read_timeout": 5}

    def broken(mode: str) -> tuple[dict[str, Any], envelope.Event]:
        sim.set_fault(mode, count=1, retry_after=1)
        return options, event()

    return Rig(options, lambda: sim.stats()["effects"],
               lambda: broken("503"), lambda: broken("400"))


def file_rig(tmp_path: Path, sim: SimulatorHandle) -> Rig:
    path = tmp_path / "erp.jsonl"

    def effects() -> int:
        return len(path.read_bytes().splitlines()) if path.exists() else 0

    return Rig({"path": str(path)}, effects,
               lambda: ({"path": str(tmp_path / "gone" / "erp.jsonl")}, event()),
               lambda: ({"path": str(path)}, unwritable_event()))


def sql_rig(tmp_path: Path, sim: SimulatorHandle) -> Rig:
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    options = {"url": url, "create_table": True, "timeout": 1}

    def effects() -> int:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as db:
                if not sa.inspect(db).has_table("edigw_staging"):
                    return 0
                return db.execute(sa.text("select count(*) from edigw_staging")).scalar_one()
        finally:
            engine.dispose()

    return Rig(options, effects,
               lambda: ({**options, "url": f"sqlite:///{tmp_path / 'gone' / 'erp.db'}"}, event()),
               lambda: ({**options, "create_table": False, "table": "missing"}, event()))


RIGS = {"http": http_rig, "file": file_rig, "sql": sql_rig}


def test_every_registered_output_has_a_rig() -> None:
    assert set(RIGS) == set(registry.OUTPUTS)


@pytest.fixture(params=sorted(registry.OUTPUTS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rig(kind: str, tmp_path: Path, simulator: SimulatorHandle) -> Rig:
    simulator.state.reset()
    return RIGS[kind](tmp_path, simulator)


@pytest.fixture
def output(kind: str, rig: Rig) -> Iterator[Output]:
    out = registry.build_output(kind, rig.options)
    yield out
    out.close()


def test_is_an_output(output: Output) -> None:
    assert isinstance(output, Output)


def test_the_same_event_twice_is_one_effect(output: Output, rig: Rig) -> None:
    output.connect()
    first = output.write(event())
    again = output.write(event())
    assert (first.event_id, first.duplicate) == (event().id, False)
    assert (again.event_id, again.duplicate) == (event().id, True)
    assert rig.effects() == 1


def test_distinct_events_are_distinct_effects(output: Output, rig: Rig) -> None:
    output.connect()
    for n in range(1, 4):
        assert not output.write(event(n)).duplicate
    assert rig.effects() == 3


def test_a_batch_gives_each_event_its_own_outcome(output: Output, rig: Rig) -> None:
    output.connect()
    output.write(event(1))
    told: list[int] = []
    got = base.write_many(output, [event(1), event(2), unwritable_event(), event(3)],
                          lambda n, _: told.append(n))
    assert sorted(told) == [0, 1, 2, 3]  # each outcome told once
    receipts = [g for g in got if isinstance(g, DeliveryReceipt)]
    assert [(r.event_id, r.duplicate) for r in receipts] == [
        (event(1).id, True), (event(2).id, False), (event(3).id, False)]
    assert isinstance(got[2], errors.PermanentError)
    assert rig.effects() == 3


def test_reconnecting_keeps_idempotency(kind: str, output: Output, rig: Rig) -> None:
    output.connect()
    output.write(event())
    output.close()
    output.close()  # twice is harmless
    output.connect()
    assert output.write(event()).duplicate
    fresh = registry.build_output(kind, rig.options)  # as a new worker process would
    try:
        assert fresh.write(event()).duplicate  # write connects when needed
    finally:
        fresh.close()
    assert rig.effects() == 1


def test_a_transient_failure_is_a_transient_error(kind: str, rig: Rig) -> None:
    options, ev = rig.transient()
    out = registry.build_output(kind, options)
    try:
        with pytest.raises(errors.TransientError):
            out.connect()
            out.write(ev)
    finally:
        out.close()
    assert rig.effects() == 0


def test_a_permanent_failure_is_a_permanent_error(kind: str, rig: Rig) -> None:
    options, ev = rig.permanent()
    out = registry.build_output(kind, options)
    try:
        with pytest.raises(errors.PermanentError):
            out.connect()
            out.write(ev)
    finally:
        out.close()
    assert rig.effects() == 0


def test_config_fields_are_documented(kind: str) -> None:
    for row in config.describe(registry.OUTPUTS[kind].config):
        assert row.description, f"{kind}.{row.name} has no description"
        assert row.example is not None, f"{kind}.{row.name} has no example"


def test_unknown_options_are_refused_by_name(kind: str, rig: Rig) -> None:
    with pytest.raises(errors.ConfigError, match="urll"):
        registry.build_output(kind, {**rig.options, "urll": "x"})


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(errors.ConfigError, match="known: file, http, sql"):
        registry.build_output("ftp", {})


# -- inputs: every registered kind is documented, strict about its options and an Input.
# (Reading, acking and failures are proved per kind against the real server: for sftp in
# tests/integration/test_sftp_sshd.py.)

INPUT_OPTIONS: dict[str, dict[str, Any]] = {
    "folder": {"root": "var/inbox", "stable_for": 0},
    "sftp": {"host": "127.0.0.1", "username": "distributor", "password": {"env": "NOT_READ"},
             "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIB+i+f+g512hHOTFePxcEAxWPHHEgU7usKyDlExOBaN",
             "inbox": "/outbound", "archive": "/outbound/archive"},
    "webhook": {"secret": {"env": "NOT_READ"}},
}


# What the gateway gives each kind when it builds one (a partner, or its own limits).
INPUT_CONTEXT: dict[str, dict[str, Any]] = {
    "folder": {"max_bytes": 1000, "large_bytes": 100},
    "sftp": {"partner": "acme"},
    "webhook": {"partner": "acme"},
}


def test_every_registered_input_has_options() -> None:
    assert set(INPUT_OPTIONS) == set(INPUT_CONTEXT) == set(registry.INPUTS)


@pytest.mark.parametrize("input_kind", sorted(registry.INPUTS))
def test_inputs_are_inputs_with_documented_settings(input_kind: str) -> None:
    built = registry.build_input(input_kind, INPUT_OPTIONS[input_kind],
                                 **INPUT_CONTEXT[input_kind])
    assert isinstance(built, Input)
    built.close()  # without connect: harmless
    for row in config.describe(registry.INPUTS[input_kind].config):
        assert row.description, f"{input_kind}.{row.name} has no description"
        assert row.example is not None, f"{input_kind}.{row.name} has no example"
    with pytest.raises(errors.ConfigError, match="hostt"):
        registry.build_input(input_kind, {**INPUT_OPTIONS[input_kind], "hostt": "x"},
                             **INPUT_CONTEXT[input_kind])


def test_unknown_input_kinds_are_refused() -> None:
    with pytest.raises(errors.ConfigError,
                       match=r"unknown input kind 'ftp' \(known: folder, sftp, webhook\)"):
        registry.build_input("ftp", {}, partner="acme")
