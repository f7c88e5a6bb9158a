"""Outbound X12: delimiters in data refused (E5), ISA 106 characters, control numbers."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical.errors import OutboundDataError, PermanentError
from mappings.x12 import writer
from mappings.x12.control_numbers import (
    ControlNumbers,
    FileControlNumbers,
    MemoryControlNumbers,
)
from mappings.x12.reader import Delimiters, X12Reader

pytestmark = pytest.mark.unit

W = writer.SegmentWriter()


def _header(**kw: object) -> writer.IsaHeader:
    base: dict[str, object] = dict(sender_qualifier="ZZ", sender_id="US", receiver_qualifier="ZZ",
                                   receiver_id="THEM", date="240102", time="0304",
                                   control_number=7)
    base.update(kw)
    return writer.IsaHeader(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("char", ["*", "~", ":", "^", "\r", "\n"])
@pytest.mark.parametrize("shape", ["element", "component", "repetition"])
def test_a_delimiter_or_line_break_in_data_is_refused(char: str, shape: str) -> None:
    value = f"AB{char}CD"
    element = {"element": value, "component": ["X", value],
               "repetition": writer.Repeat(["X", value])}[shape]
    with pytest.raises(OutboundDataError) as info:
        W.segment("N1", "ST", element)
    message = str(info.value)
    assert "segment N1" in message and "element N102" in message
    assert repr(char) in message
    assert isinstance(info.value, PermanentError)


@pytest.mark.parametrize("char", ["\t", "\x00", "\x1d", "\x7f", "\x85"])
def test_other_control_characters_are_refused(char: str) -> None:
    with pytest.raises(OutboundDataError, match="control character"):
        W.segment("REF", "DP", f"A{char}")


def test_refusal_names_component_and_repetition() -> None:
    with pytest.raises(OutboundDataError, match=r"element AK401 component 2"):
        W.segment("AK4", ["1", "a~b"])
    with pytest.raises(OutboundDataError, match=r"element N102 repetition 2"):
        W.segment("N1", "ST", writer.Repeat(["ok", "x*y"]))


def test_other_delimiters_change_what_is_refused() -> None:
    w = writer.SegmentWriter(Delimiters("|", ">", "!", "\n"))
    assert w.segment("N1", "ST", "A*B~C:D^E") == "N1|ST|A*B~C:D^E\n"
    with pytest.raises(OutboundDataError, match="element separator"):
        w.segment("N1", "ST", "A|B")


def test_segments_composites_and_repetitions() -> None:
    assert W.segment("AK4", ["5", "2"], "1331", "4", None) == "AK4*5:2*1331*4~"
    assert W.segment("AK3", "NM1", 5, None, "8") == "AK3*NM1*5**8~"
    assert W.segment("X1", ["1", None, None], "", None) == "X1*1~"
    assert W.segment("X2", writer.Repeat(["A", ["B", "C"]])) == "X2*A^B:C~"
    assert writer.SegmentWriter(newline="\r\n").segment("SE", 2, "0001") == "SE*2*0001~\r\n"


@pytest.mark.parametrize("delims", [
    Delimiters("*", "*", "^", "~"), Delimiters("A", ":", "^", "~"), Delimiters("*", ":", "^", " "),
])
def test_bad_delimiter_choices_are_refused(delims: Delimiters) -> None:
    with pytest.raises(OutboundDataError):
        writer.SegmentWriter(delims)


def test_a_newline_that_is_also_the_terminator_is_refused() -> None:
    with pytest.raises(OutboundDataError):
        writer.SegmentWriter(Delimiters("*", ":", "^", "\n"), newline="\n")


def test_bad_segment_ids_are_refused() -> None:
    for seg_id in ("", "A", "ABCD", "n1", "N~"):
        with pytest.raises(OutboundDataError):
            W.segment(seg_id, "x")


_isa_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                           blacklist_characters="*:^~"), max_size=15)


@given(sender=_isa_text.filter(str.strip), receiver=_isa_text.filter(str.strip),
       control=st.integers(1, writer.MAX_CONTROL_NUMBER),
       auth=st.text(alphabet="ABC 123", max_size=10),
       version=st.sampled_from(["00401", "00501", "00304"]),
       usage=st.sampled_from("PTI"), ack=st.booleans())
def test_isa_is_always_106_characters(sender: str, receiver: str, control: int, auth: str,
                                      version: str, usage: str, ack: bool) -> None:
    h = _header(sender_id=sender, receiver_id=receiver, control_number=control,
                auth_info=auth, version=version, usage=usage, ack_requested=ack)
    isa = writer.isa_segment(h, W)
    assert len(isa) == writer.ISA_LENGTH
    fields = isa[:-1].split("*")
    assert len(fields) == 17
    assert fields[13] == f"{control:09d}"
    assert fields[11] == ("U" if version < "00402" else "^")
    assert fields[16] == ":"


@pytest.mark.parametrize("field,value", [
    ("sender_id", "X" * 16), ("receiver_id", "Y" * 16), ("auth_info", "Z" * 11),
    ("sender_qualifier", "ZZZ"), ("date", "2024010"), ("date", "24010"), ("time", "12345"),
    ("date", "24AB01"), ("control_number", 0), ("control_number", 1_000_000_000),
    ("usage", "X"), ("version", "4010"), ("sender_id", "A*B"), ("receiver_id", "A~B"),
])
def test_isa_values_that_do_not_fit_are_refused(field: str, value: object) -> None:
    with pytest.raises(OutboundDataError):
        writer.isa_segment(_header(**{field: value}), W)


def test_interchange_counts_and_reads_back() -> None:
    out = writer.InterchangeWriter(_header(control_number=42), writer.SegmentWriter(newline="\n"))
    g = out.group("PR", "US", "THEM", "20240102", "0304", 9, "004010")
    ts = g.transaction_set("855", 1)
    g.add(ts, "BAK", "00", "AC", "PO1", "20240102")
    text = out.render()
    segs = list(X12Reader(text.encode()))
    ids = [s.id for s in segs]
    assert ids == ["ISA", "GS", "ST", "BAK", "SE", "GE", "IEA"]
    assert segs[2].fields == ["ST", "855", "0001"]
    assert segs[4].fields == ["SE", "3", "0001"]
    assert segs[5].fields == ["GE", "1", "9"]
    assert segs[6].fields == ["IEA", "1", "000000042"]


def test_a_group_with_a_delimiter_in_gs_is_refused_when_started() -> None:
    out = writer.InterchangeWriter(_header())
    with pytest.raises(OutboundDataError, match="element GS02"):
        out.group("PR", "U*S", "THEM", "20240102", "0304", 9, "004010")


# -- control numbers ---------------------------------------------------------------------

def test_memory_numbers_count_up_per_kind() -> None:
    n = MemoryControlNumbers()
    assert isinstance(n, ControlNumbers)
    assert [n.next_interchange(), n.next_interchange(), n.next_group(), n.next_set()] == [1, 2, 1, 1]


def test_numbers_are_not_wrapped_around() -> None:
    n = MemoryControlNumbers(start=writer.MAX_CONTROL_NUMBER)
    assert n.next_interchange() == writer.MAX_CONTROL_NUMBER
    with pytest.raises(OutboundDataError, match="never wrapped"):
        n.next_interchange()


def test_file_numbers_are_never_reused_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "numbers.json"
    first = FileControlNumbers(path)
    taken = [first.next_interchange(), first.next_interchange(), first.next_group()]
    second = FileControlNumbers(path)  # as a second run of the CLI would
    taken += [second.next_interchange(), first.next_interchange(), second.next_interchange()]
    interchanges = [taken[0], taken[1], taken[3], taken[4], taken[5]]
    assert interchanges == [1, 2, 3, 4, 5]
    assert json.loads(path.read_text()) == {"interchange": 5, "group": 1, "set": 0}
    assert not list(tmp_path.glob("*.tmp"))


def test_file_start_moves_forward_only(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    FileControlNumbers(path, start=500).next_set()
    assert FileControlNumbers(path, start=10).next_set() == 501
    assert FileControlNumbers(path, start=1000).next_set() == 1000


def test_an_unreadable_number_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text("{not json")
    with pytest.raises(OutboundDataError, match="unreadable"):
        FileControlNumbers(path).next_interchange()


def _take_many(path: str, count: int) -> list[int]:
    n = FileControlNumbers(path)
    return [n.next_interchange() for _ in range(count)]


def test_file_numbers_are_unique_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "n.json")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        batches = pool.starmap(_take_many, [(path, 25)] * 4)
    taken = [n for b in batches for n in b]
    assert sorted(taken) == list(range(1, 101))
