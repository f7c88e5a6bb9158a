"""For every corpus file: the acks built from the validator's verdict are accepted by pyx12."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from mappings.x12 import acks, validator
from mappings.x12.control_numbers import MemoryControlNumbers
from mappings.x12.pyx12_bridge import run_pyx12

pytestmark = pytest.mark.conformance


def test_every_corpus_ack_is_accepted_by_pyx12(x12_corpus: Path) -> None:
    numbers = MemoryControlNumbers()
    failures: list[str] = []
    built = 0
    for path in sorted(p for p in x12_corpus.rglob("*") if p.is_file()):
        for ic in validator.validate(str(path), path=str(path)).interchanges:
            for ack in acks.build_acknowledgments(ic, numbers, datetime(2024, 1, 1, 12, 0)):
                built += 1
                verdict = run_pyx12(ack.text.encode())
                errors = [e for s in verdict.sets.values() for e in s.errors]
                if not verdict.valid or errors or verdict.envelope_errors:
                    failures.append(f"{path.name} {ack.kind}: {errors or verdict.envelope_errors}")
    assert built > 0
    assert failures == []
