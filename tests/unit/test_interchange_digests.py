"""The interchanges' content hashes taken through the validator's tap are those read alone."""

from __future__ import annotations

from pathlib import Path

from gateway.pipeline import stages
from mappings.x12 import validator


def _files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() in
                  (".edi", ".x12", ".txt", ".dat"))


def test_tapped_digests_equal_a_second_reading(x12_corpus: Path) -> None:
    files = _files(x12_corpus)
    assert len(files) > 20 and any("invalid" in p.parts for p in files)
    many = 0
    for path in files:
        data = path.read_bytes()
        tapped = stages.Digests()
        validator.validate(data, path=str(path), tap=tapped)
        alone = stages.interchange_digests(data)
        assert tapped.result() == alone, path
        many += len(alone) > 1
    assert many, "no file of several interchanges was compared"


def test_a_file_cut_short_hashes_what_was_read() -> None:
    isa = (b"ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261120*"
           b"0930*U*00401*000000001*0*P*>~")
    data = isa + b"GS*PO*SENDER*RECEIVER*20261120*0930*1*X*004010~ST*850*0001~BEG*00*SA*"
    tapped = stages.Digests()
    validator.validate(data, tap=tapped)
    assert tapped.result() == stages.interchange_digests(data)
    assert len(tapped.result()) == 1
