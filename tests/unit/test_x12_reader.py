"""The streaming reader: delimiters from each ISA, tolerance of real-world layout, bounded memory."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical.errors import InputTooLarge, X12ReadError
from mappings.x12 import reader as rd
from mappings.x12.reader import X12Reader
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def isa(elem="*", comp=">", term="~", rep="U", version="00401", control="000000001") -> str:
    """A well-formed 106-character ISA with the given delimiters."""
    fields = ["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SENDER".ljust(15), "ZZ",
              "RECEIVER".ljust(15), "240102", "1200", rep, version, control, "0", "P", comp]
    text = elem.join(fields) + term
    assert len(text) == 106
    return text


def interchange(elem="*", comp=">", term="~", rep="U", version="00401", control="000000001",
                after="") -> str:
    body = [
        f"GS{elem}PO{elem}SENDER{elem}RECEIVER{elem}20240102{elem}1200{elem}1{elem}X{elem}004010",
        f"ST{elem}850{elem}0001",
        f"BEG{elem}00{elem}SA{elem}PO1{elem}{elem}20240102",
        f"SE{elem}3{elem}0001",
        f"GE{elem}1{elem}1",
        f"IEA{elem}1{elem}{control}",
    ]
    return isa(elem, comp, term, rep, version, control) + after + "".join(
        s + term + after for s in body)


def read(data: bytes | str, **kw) -> tuple[list[rd.Segment], X12Reader]:
    if isinstance(data, str):
        data = data.encode()
    r = X12Reader(data, **kw)
    return list(r), r


def ids(segs: list[rd.Segment]) -> list[str]:
    return [s.id for s in segs]


def test_reads_segments_and_elements_with_x12_numbering():
    segs, r = read(interchange())
    assert ids(segs) == ["ISA", "GS", "ST", "BEG", "SE", "GE", "IEA"]
    beg = segs[3]
    assert beg.get(3) == "PO1" and beg.get(4) == "" and beg.get(9) == ""
    assert [s.position for s in segs] == list(range(1, 8))
    assert r.interchange.delimiters == rd.Delimiters("*", ">", None, "~")
    assert r.interchange.isa_length == 106


@pytest.mark.parametrize("elem,comp,term", [
    ("*", ">", "~"), ("|", ">", "~"), ("~", ">", "\r"), ("*", "~", "|"), ("\x7f", ">", "\x15"),
    ("*", ":", "\n"), ("~", "`", "*"), ("*", "@", "!"), (">", "+", "\r"),
])
def test_any_delimiters_from_the_isa(elem, comp, term):
    segs, r = read(interchange(elem, comp, term))
    assert ids(segs)[-1] == "IEA"
    assert r.interchange.delimiters.element == elem
    assert r.interchange.delimiters.component == comp
    assert r.interchange.delimiters.segment == term


def test_repetition_separator_only_from_00402_on():
    _, r = read(interchange(rep="^", version="00501"))
    assert r.interchange.delimiters.repetition == "^"
    _, r = read(interchange(rep="U", version="00401"))
    assert r.interchange.delimiters.repetition is None


@pytest.mark.parametrize("after", ["\n", "\r\n", " ", "\r\n    ", "\n\t"])
def test_line_breaks_spaces_and_indentation_after_terminators(after):
    segs, _ = read(interchange(after=after))
    assert ids(segs) == ["ISA", "GS", "ST", "BEG", "SE", "GE", "IEA"]
    assert segs[3].fields == ["BEG", "00", "SA", "PO1", "", "20240102"]


def test_line_numbers_follow_the_file():
    segs, _ = read(interchange(after="\n"))
    assert [s.line for s in segs] == [1, 2, 3, 4, 5, 6, 7]
    segs, _ = read(interchange(term="\n"))
    assert [s.line for s in segs] == [1, 2, 3, 4, 5, 6, 7]


def test_bom_is_skipped():
    segs, r = read(b"\xef\xbb\xbf" + interchange().encode())
    assert ids(segs)[0] == "ISA" and r.info.bom


def test_lines_wrapped_inside_segments_are_joined():
    text = interchange()
    wrapped = "\n".join(text[i:i + 80] for i in range(0, len(text), 80))
    segs, r = read(wrapped)
    assert ids(segs) == ["ISA", "GS", "ST", "BEG", "SE", "GE", "IEA"]
    assert r.interchange.isa_length == 106
    assert segs[0].get(10) == "1200"


def test_several_interchanges_with_different_delimiters():
    text = interchange() + "\n" + interchange("|", "^", "\n", control="000000002")
    segs, r = read(text)
    assert ids(segs).count("ISA") == 2 and ids(segs).count("IEA") == 2
    assert segs[-1].fields == ["IEA", "1", "000000002"]
    assert r.interchange.delimiters.element == "|"


def test_thousands_of_interchanges_in_one_file_do_not_nest():
    text = "".join(interchange(control=f"{i:09d}") for i in range(1, 3001))
    segs, _ = read(text)
    assert len(segs) == 3000 * 7


def test_new_isa_before_iea_starts_a_new_interchange():
    first = interchange().rsplit("IEA", 1)[0]
    segs, _ = read(first + interchange("|", ">", "~", control="000000002"))
    assert ids(segs).count("ISA") == 2 and ids(segs).count("IEA") == 1


def test_last_segment_without_terminator_is_read():
    segs, _ = read(interchange()[:-1])
    assert segs[-1].fields == ["IEA", "1", "000000001"]


def test_ebcdic_is_read_as_code_page_037():
    segs, r = read(interchange(term="\x85").encode("cp037"))
    assert ids(segs)[-1] == "IEA" and r.info.encoding == "cp037"
    assert r.interchange.notes == []


def test_latin1_fallback_is_noted():
    text = interchange().replace("PO1", "PO\xe9")
    segs, r = read(text.encode("latin-1"))
    assert segs[3].get(3) == "PO\xe9"
    assert r.info.encoding == "latin-1" and "Latin-1" in r.info.warnings[0]


def test_utf8_is_decoded():
    segs, r = read(interchange().replace("PO1", "PO\u00e9").encode())
    assert segs[3].get(3) == "PO\u00e9" and r.info.encoding == "utf-8"


def test_unpadded_isa_is_read_and_its_length_recorded():
    text = interchange().replace("SENDER         ", "SENDER")
    segs, r = read(text)
    assert ids(segs)[-1] == "IEA" and r.interchange.isa_length == 97


def test_data_after_iea_is_handed_on():
    segs, r = read(interchange() + "JUNK*1~")
    assert ids(segs)[-1] == "JUNK"
    assert "not an interchange" in r.interchange.notes[0]


@pytest.mark.parametrize("data,why", [
    (b"", "empty"), (b"   \n ", "empty"), (b"Tk9OIEVESSBGSUxF", "does not start with an ISA"),
    (b"ISA*00*", "cut short"), (b"ISAX00", "element separator"), (b"GS*PO*1~", "ISA"),
])
def test_not_x12_is_a_read_error(data, why):
    with pytest.raises(X12ReadError, match=why):
        read(data)


def test_size_limit_refuses_before_reading():
    data = interchange().encode()
    with pytest.raises(InputTooLarge):
        X12Reader(data, max_bytes=100)
    with pytest.raises(InputTooLarge):
        list(X12Reader(io.BytesIO(data), max_bytes=100))


def test_a_segment_without_terminator_is_bounded(monkeypatch):
    monkeypatch.setattr(rd, "MAX_SEGMENT_CHARS", 1000)
    with pytest.raises(X12ReadError, match="no segment terminator"):
        read(isa() + "GS*" + "A" * 5000)


def test_reads_from_a_path(tmp_path):
    p = tmp_path / "x.edi"
    p.write_text(interchange())
    with X12Reader(p) as r:
        assert ids(list(r))[-1] == "IEA"


def _signature(segs):
    return [(s.fields, s.position, s.line) for s in segs]


@settings(max_examples=60, deadline=None)
@given(chunk=st.integers(min_value=1, max_value=64),
       after=st.sampled_from(["", "\n", "\r\n", "  "]),
       delims=st.sampled_from([("*", ">", "~"), ("|", "^", "\n"), ("~", ">", "\r")]))
def test_chunk_boundaries_never_change_the_result(chunk, after, delims):
    text = (interchange(*delims, after=after)
            + interchange("*", ":", "!", control="000000002", after=after))
    expected, _ = read(text, chunk_size=1 << 16)
    got, _ = read(text, chunk_size=chunk)
    assert _signature(got) == _signature(expected)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_give_segments_or_a_read_error(data):
    try:
        for _ in X12Reader(data, chunk_size=17):
            pass
    except X12ReadError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_after_a_valid_isa_never_escape(data):
    try:
        for _ in X12Reader(isa().encode() + data, chunk_size=23):
            pass
    except X12ReadError:
        pass


def test_every_corpus_file_is_read_or_refused_with_a_reason(x12_corpus):
    for path in sorted(x12_corpus.glob("*/*.edi")):
        try:
            segs = list(X12Reader(path))
        except X12ReadError as exc:
            assert path.name == "ediengine-not-edi.edi", (path, exc)
            continue
        assert segs[0].id == "ISA", path


# -- chunk boundaries: every character of a varied file at every buffer edge --------------

def _varied_file() -> str:
    """Interchanges in every layout the reader tolerates, so that each kind of segment,
    terminator, line break, envelope boundary and stray data lands on a chunk edge."""
    wrapped = interchange(control="000000003")
    return (_long(interchange(after="\r\n"), "*", "~\r\n")
            + _long(interchange("|", "^", "\n", control="000000002"), "|", "\n")
            + "\n".join(wrapped[i:i + 50] for i in range(0, len(wrapped), 50)) + "\n"
            + _long(interchange("~", ">", "\r", control="000000004", after="\n"), "~", "\r\n")
            + interchange("*", ":", "!", control="000000005", after="  ").replace("PO1", "P\u00c9")
            + interchange(control="000000006").rsplit("IEA", 1)[0]  # no IEA: the next ISA ends it
            + interchange(control="000000007").replace("~", "~~", 3)  # blank segments
            + interchange("*", ">", "~", rep="^", version="00501", control="000000008")
            + _split(interchange(control="000000009"), 50)  # an ISA broken over two lines
            + "JUNK*1~MORE*2*3~")  # stray data after the last IEA


def _long(text: str, elem: str, end: str) -> str:
    """The interchange with lines added before its SE: longer than the reader's look-ahead
    at an ISA (4 ISA lengths), so the next ISA is read through the chunk loop."""
    lines = "".join(f"PO1{elem}{i}{elem}1{elem}EA{end}" for i in range(30))
    return text.replace(f"SE{elem}3", lines + f"SE{elem}3")


def _split(text: str, at: int) -> str:
    return text[:at] + "\r\n" + text[at:]


def _chunked_signature(data: bytes, chunk: int) -> list:
    r = X12Reader(data, chunk_size=chunk)
    out = []
    for s in r:
        out.append((s.fields, s.position, s.line, r.interchange.delimiters, r.interchange.notes[:],
                    r.interchange.isa_length))
    return [*out, (r.info.encoding, r.info.warnings)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 64, 431])
def test_every_offset_across_every_chunk_boundary_reads_the_same(chunk):
    # Leading spaces shift the file by 0..chunk-1, so each character of it falls on a
    # chunk edge once for every edge; a file read in one chunk is the reference.
    text = _varied_file()
    expected = _chunked_signature(text.encode(), 1 << 20)
    assert [f[0][0] for f in expected[:-1]].count("ISA") == 9
    assert expected[-2][0] == ["MORE", "2", "3"]
    for pad in range(chunk):
        data = (" " * pad + text).encode()
        assert _chunked_signature(data, chunk) == expected, (chunk, pad)


@pytest.mark.parametrize("prefix,encoding", [
    (b"", "ascii"), (rd._BOM, "ascii"), (b"\r\n \n", "ascii"), (rd._BOM + b"\n\n", "ascii")])
@pytest.mark.parametrize("chunk", range(1, 9))
def test_the_start_of_the_file_is_recognised_whatever_the_chunk_size(prefix, encoding, chunk):
    segs, r = read(prefix + interchange().encode(), chunk_size=chunk)
    assert ids(segs) == ["ISA", "GS", "ST", "BEG", "SE", "GE", "IEA"]
    assert r.info.encoding == encoding and r.info.bom == prefix.startswith(rd._BOM)


@pytest.mark.parametrize("noise", [b"", b"\x40\x40", b"\x25\x15\x0d\x40"])
@pytest.mark.parametrize("chunk", range(1, 9))
def test_ebcdic_is_recognised_whatever_the_chunk_size(noise, chunk):
    segs, r = read(noise + interchange(term="\x85").encode("cp037"), chunk_size=chunk)
    assert ids(segs)[-1] == "IEA" and r.info.encoding == "cp037"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_latin1_fallback_does_not_depend_on_where_a_chunk_ends(chunk):
    # UTF-8 text first, then a Latin-1 superscript two (0xB2): the good UTF-8 before the
    # bad byte stays UTF-8 wherever the chunk edges are.
    data = interchange().replace("PO1", "P\u00c9").encode() + interchange(
        control="000000002").replace("PO1", "PO\u00b2").encode("latin-1")
    expected = _chunked_signature(data, 1 << 20)
    assert [f[0] for f in expected if f[0][0] == "BEG"] == [
        ["BEG", "00", "SA", "P\u00c9", "", "20240102"],
        ["BEG", "00", "SA", "PO\u00b2", "", "20240102"]]
    for pad in range(chunk):
        padded = b" " * pad + data
        assert _chunked_signature(padded, chunk) == _chunked_signature(padded, 1 << 20)


def _golden_850() -> bytes:
    return (REPO / "samples" / "x12" / "acme-850-4010.edi").read_bytes()


def test_an_isa_across_the_real_chunk_boundary_starts_an_interchange():
    # Issue #10: the second ISA at byte 65535 was taken for data after the first IEA.
    # Every start from the whole ISA before the edge to just after it.
    first = _golden_850()
    second = first.replace(b"000001001", b"000001002")
    for start in range(rd.CHUNK_SIZE - 2 * rd.ISA_LENGTH, rd.CHUNK_SIZE + 4):
        data = first + b"\n" * (start - len(first)) + second
        r = X12Reader(data)
        isas = []
        for s in r:
            if s.id == "ISA":
                isas.append((s.get(13), r.interchange.notes, r.interchange.position))
        assert [i[0] for i in isas] == ["000001001", "000001002"], start
        assert isas[1][1] == [], start


def test_thousands_of_interchanges_across_many_real_chunks_are_all_interchanges():
    # Issue #10: with 5,000 concatenated interchanges every one after the 3,881st was
    # rejected; each ISA must be read as an ISA wherever a chunk ends. Blank lines after
    # each make the interchanges a length for which some ISA starts 1 or 2 bytes before
    # a chunk edge.
    golden = _golden_850()
    size = next(n for n in range(len(golden), len(golden) + 64)
                if any(k * n % rd.CHUNK_SIZE > rd.CHUNK_SIZE - 3 for k in range(5000)))
    data = b"".join(golden.replace(b"000001001", b"%09d" % i).ljust(size, b"\n")
                    for i in range(1, 5001))
    r = X12Reader(data)
    notes = [(s.get(13), r.interchange.notes) for s in r if s.id == "ISA"]
    assert len(notes) == 5000 and not any(n for _, n in notes)
