"""The file output after crashes: torn lines cut off, ids written before a crash not repeated."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from canonical import envelope, errors
from channels import registry

pytestmark = pytest.mark.unit

WHEN = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)
PO = {"po_number": "PO1", "lines": [{"line_number": "1", "quantity": {"value": "1", "unit": "EA"}}]}
REPO = Path(__file__).resolve().parents[2]

# A worker that delivers events n..m and then dies by SIGKILL before it could record anything.
WORKER = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from canonical import envelope
    from channels import registry
    out = registry.build_output("file", {"path": sys.argv[1]})
    for n in range(int(sys.argv[2]), int(sys.argv[3]) + 1):
        keys = {"isa13": "000000101", "gs06": "101", "st02": f"{n:04d}"}
        po = {"po_number": "PO1", "lines": [{"line_number": "1",
              "quantity": {"value": "1", "unit": "EA"}}]}
        ev = envelope.make_event("purchase_order", po, partner="acme", keys=keys,
                                 time=datetime(2024, 3, 12, 9, 30, tzinfo=UTC))
        out.write(ev)
    if sys.argv[4] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
""")


def event(n: int = 1) -> envelope.Event:
    keys = {"isa13": "000000101", "gs06": "101", "st02": f"{n:04d}"}
    return envelope.make_event("purchase_order", PO, partner="acme", keys=keys, time=WHEN)


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_bytes().splitlines()]


def worker(path: Path, first: int, last: int, end: str = "exit") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(first), str(last), end],
                            cwd=REPO)


def test_an_id_written_before_a_crash_is_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "erp.jsonl"
    crashed = worker(path, 1, 3, "kill")
    assert crashed.wait(timeout=60) == -9  # died after writing, before recording
    out = registry.build_output("file", {"path": str(path)})
    receipts = [out.write(event(n)) for n in (1, 2, 3, 4)]  # the outbox tries all again
    out.close()
    assert [r.duplicate for r in receipts] == [True, True, True, False]
    assert ids(path) == [event(n).id for n in (1, 2, 3, 4)]


def test_a_torn_last_line_is_cut_off_and_rewritten(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "erp.jsonl"
    out = registry.build_output("file", {"path": str(path)})
    out.write(event(1))
    out.close()
    whole = path.read_bytes()
    torn = envelope.to_json(event(2))[:40]  # the crash came mid-write
    path.write_bytes(whole + torn)
    out = registry.build_output("file", {"path": str(path)})
    with caplog.at_level(logging.WARNING):
        out.connect()
    assert "torn last line of 40 bytes" in caplog.text
    assert path.read_bytes() == whole
    assert not out.write(event(2)).duplicate
    out.close()
    assert ids(path) == [event(1).id, event(2).id]


def test_writers_in_two_processes_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "erp.jsonl"
    workers = [worker(path, 1, 40), worker(path, 21, 60)]  # 20 events in common
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    written = ids(path)
    assert sorted(written) == sorted(event(n).id for n in range(1, 61))


def test_lines_appended_by_another_writer_count_before_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "erp.jsonl"
    first = registry.build_output("file", {"path": str(path)})
    second = registry.build_output("file", {"path": str(path)})
    first.connect()
    second.connect()
    first.write(event())
    assert second.write(event()).duplicate
    first.close()
    second.close()
    assert len(ids(path)) == 1


def test_a_broken_complete_line_stops_delivery_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "erp.jsonl"
    path.write_bytes(envelope.to_json(event(1)) + b"\nnot json\n")
    out = registry.build_output("file", {"path": str(path)})
    with pytest.raises(errors.DeliveryUnavailable, match="line at byte"):
        out.write(event(2))
    out.close()


def test_a_new_file_is_not_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "erp.jsonl"
    old = os.umask(0o022)
    try:
        out = registry.build_output("file", {"path": str(path)})
        out.write(event())
        out.close()
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
