"""pyx12, run with our maps through the bridge, over the X12 corpus.

Every [strict]/[lenient] file pyx12 can read must be accepted set by set.  Files that
really break the X12 standard are listed in EXPECTED_REJECTIONS with the rule broken;
files pyx12's own reader cannot handle are in UNREADABLE.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from canonical.errors import X12ReadError
from mappings.x12.pyx12_bridge import run_pyx12

pytestmark = pytest.mark.conformance

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("EDIGW_CORPUS", str((REPO.parent / "shared" / "corpus").resolve())))
DIRS = ("850", "855", "856", "810", "997", "999")

EXPECTED_REJECTIONS = {
    "850/bots-4010-plus-subsep-two-groups.edi":
        "both groups use GS06 5 and ST02 000000001 repeats inside a group: control "
        "numbers must be unique",
    "850/bots-4010-space-after-term-single-line.edi":
        "the second PO has DTM*037*19980205***19, the pre-004010 DTM layout (Century in "
        "DTM05); at 004010 DTM05 is element 1250 and syntax note P0506 then requires DTM06",
    "850/bots-4010-wrapped-80col-crlf.edi":
        "the second PO has DTM*037*19980205***19, the pre-004010 DTM layout (Century in "
        "DTM05); at 004010 DTM05 is element 1250 and syntax note P0506 then requires DTM06",
    "850/bots-4010-wrapped-80col-lf.edi":
        "the second PO has DTM*037*19980205***19, the pre-004010 DTM layout (Century in "
        "DTM05); at 004010 DTM05 is element 1250 and syntax note P0506 then requires DTM06",
    "855/oopfactory-adobe-cr-term.edi":
        "N301 '5555 161TH AVE ' ends in a space: trailing spaces of AN elements must be "
        "suppressed",
    "855/stupidedi-x358-minor-changes.edi":
        "ACK*IQ*20 has ACK02 without ACK03, against ACK syntax note P0203",
    "810/oopfactory-4030-two-invoices.edi":
        "ISS (summary area, after TDS) is sent before TDS",
    "810/staedi-two-groups-3010-4010-810-850.edi":
        "the 850 of the 004010 group has BEG05 040317 (date is DT 8/8 at 004010) and "
        "an N1 with N103 but no N104, against N1 syntax note P0304",
    "810/stupidedi-4010-pipe-elemsep.edi":
        "IT1||4||70 has IT102 and IT104 without IT103, against IT1 syntax note P020304",
    "999/oopfactory-5010-x231-bom-crlf-indented.edi":
        "AK202 '002' is shorter than element 329's minimum of 4, and CTX06-01 'C023' "
        "is not numeric (725 is N0)",
}

UNREADABLE = {
    "850/bots-4010-ebcdic.edi": "EBCDIC-encoded; pyx12 reads ASCII only",
    "999/staedi-5010-x231-ctx-repetitions.edi":
        "repeated composite in CTX01 (repetition separator '^'): pyx12 4.0.0 does not "
        "split repetitions of a composite and fails with IndexError in "
        "segment_if.is_valid_errors",
}


def _files() -> list[str]:
    base = CORPUS / "x12"
    return sorted(str(p.relative_to(base)) for d in DIRS for p in (base / d).glob("*.edi"))


@pytest.mark.skipif(not (CORPUS / "x12").is_dir(), reason=f"no corpus at {CORPUS}")
@pytest.mark.parametrize("rel", _files())
def test_pyx12_accepts_corpus_file(rel: str) -> None:
    data = (CORPUS / "x12" / rel).read_bytes()
    if rel in UNREADABLE:
        with pytest.raises(X12ReadError):
            run_pyx12(data)
        return
    verdict = run_pyx12(data)
    rejected = {k: v.errors[:3] for k, v in verdict.sets.items() if not v.accepted}
    if rel in EXPECTED_REJECTIONS:
        assert rejected, f"now accepted; drop it from EXPECTED_REJECTIONS: {rel}"
        return
    assert not rejected, rejected


def test_exception_lists_name_existing_files() -> None:
    if not (CORPUS / "x12").is_dir():
        pytest.skip("no corpus")
    for rel in [*EXPECTED_REJECTIONS, *UNREADABLE]:
        assert (CORPUS / "x12" / rel).is_file(), rel
