"""Every golden example of every base and partner mapping gives its expected output."""

from __future__ import annotations

import pytest

from gateway.mapping_tools import examples
from tests.conftest import REPO

pytestmark = pytest.mark.conformance

CASES = [ex for m in examples.mapping_files(REPO / "mappings") for ex in examples.declared(m)]


@pytest.mark.parametrize("example", CASES,
                         ids=[f"{e.mapping.relative_to(REPO)}:{e.name}" for e in CASES])
def test_golden_example(example):
    outcome = examples.run(example)
    assert outcome.ok, outcome.error or outcome.diff


def test_there_are_examples():
    assert CASES
