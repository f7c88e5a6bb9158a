"""Hypothesis fuzzing of reader and validator: mangled corpus files end in a verdict, never a crash.

Only the documented outcomes are allowed: a FileResult (readable or not). Nothing may
raise, and each case must finish quickly (a hang fails through hypothesis's deadline).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.x12 import validator
from mappings.x12.reader import X12Reader
from mappings.x12.results import FileResult
from tests.conftest import X12_CORPUS

pytestmark = pytest.mark.unit

CORPUS_FILES = sorted(p for p in X12_CORPUS.glob("*/*.edi")) if X12_CORPUS.is_dir() else []
SETTINGS = settings(max_examples=150, deadline=2000,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    """Segments of a corpus file, cut at its own terminator (from the ISA when readable)."""
    try:
        reader = X12Reader(data)
        next(iter(reader))
        term = reader.interchange.delimiters.segment.encode("latin-1", "replace")
    except Exception:
        term = b"~"
    return data.split(term), term


def _check(data: bytes) -> FileResult:
    result = validator.validate(data, path="fuzz")
    assert isinstance(result, FileResult)
    if result.readable:
        for s in result.sets():
            assert s.ack_code in ("A", "E", "R")
        result.to_dict()  # the JSON shape must render whatever was found
    else:
        assert result.read_error
    return result


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes(data):
    _check(data)


@SETTINGS
@given(path=st.sampled_from(CORPUS_FILES), data=st.data())
def test_mutated_corpus_files(path: Path, data):
    raw = path.read_bytes()
    segs, term = _split(raw)
    op = data.draw(st.sampled_from(["drop", "dup", "swap", "truncate", "delim", "empty_el",
                                    "long_el", "bytes"]))
    i = data.draw(st.integers(0, max(0, len(segs) - 1)))
    j = data.draw(st.integers(0, max(0, len(segs) - 1)))
    if op == "drop" and segs:
        del segs[i]
    elif op == "dup" and segs:
        segs.insert(i, segs[i])
    elif op == "swap" and segs:
        segs[i], segs[j] = segs[j], segs[i]
    elif op == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
        _check(raw)
        return
    elif op == "delim":
        old = data.draw(st.sampled_from([b"*", b"~", b">", b":", b"\n", b"^"]))
        new = data.draw(st.sampled_from([b"*", b"~", b"|", b"!", b"\r", b"\x00"]))
        _check(raw.replace(old, new))
        return
    elif op == "empty_el" and segs:
        parts = segs[i].split(b"*")
        k = data.draw(st.integers(0, len(parts) - 1))
        parts[k] = b""
        segs[i] = b"*".join(parts)
    elif op == "long_el" and segs:
        segs[i] = segs[i] + b"*" + b"9" * data.draw(st.integers(1, 300))
    elif op == "bytes":
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        junk = data.draw(st.binary(min_size=1, max_size=8))
        _check(raw[:pos] + junk + raw[pos + len(junk):])
        return
    _check(term.join(segs))


def test_every_corpus_file_gives_a_result():
    for path in CORPUS_FILES:
        _check(path.read_bytes())
