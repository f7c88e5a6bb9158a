"""Every corpus file gets the verdict a reading of the standard gives (corpus_verdicts.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mappings.x12 import validator
from tests.conftest import X12_CORPUS

pytestmark = pytest.mark.conformance

MANIFEST = tomllib.loads((Path(__file__).parent / "corpus_verdicts.toml").read_text())


def test_the_manifest_covers_every_corpus_file(x12_corpus):
    files = {str(p.relative_to(x12_corpus)) for p in x12_corpus.glob("*/*.edi")}
    assert files == set(MANIFEST)


def _codes(result) -> set[str]:
    found = [f.to_dict()["code"] for f in result.findings]
    for ic in result.interchanges:
        found += [f.to_dict()["code"] for f in ic.findings]
        for g in ic.groups:
            found += [f.to_dict()["code"] for f in g.findings]
            for s in g.sets:
                found += [f.to_dict()["code"] for f in s.findings]
    return set(found)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_corpus_verdict(name):
    expect = MANIFEST[name]
    result = validator.validate(X12_CORPUS / name, path=name)
    if expect.get("readable", True) is False:
        assert not result.readable and result.read_error, name
        return
    assert result.readable, result.read_error
    got = [s.ack_code for s in result.sets()]
    verdicts = ["A" if c in ("A", "E") else "R" for c in got]
    problems = [f.to_dict() for s in result.sets() for f in s.errors]
    problems += [f.to_dict() for ic in result.interchanges for f in ic.errors]
    problems += [f.to_dict() for ic in result.interchanges for g in ic.groups for f in g.errors]
    assert verdicts == expect["sets"], (expect["why"], problems[:10])
    if "ta1" in expect:
        assert [ic.ta1_ack_code for ic in result.interchanges] == [expect["ta1"]], problems[:10]
    else:
        assert all(ic.ta1_ack_code == "A" for ic in result.interchanges), problems[:10]
    if "ta1_note" in expect:
        assert result.interchanges[0].ta1_note_code == expect["ta1_note"]
    missing = set(expect.get("codes", [])) - _codes(result)
    assert not missing, (missing, problems[:10])
    warnings = [w.message for s in result.sets() for w in s.warnings]
    warnings += [w.message for ic in result.interchanges for g in ic.groups for w in g.warnings]
    if expect.get("warning") == "nearest":
        versions = {g.version for ic in result.interchanges for g in ic.groups}
        assert any("nearest" in w and any(v in w for v in versions) for w in warnings), warnings
