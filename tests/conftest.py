"""Shared test fixtures: where the corpus lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("EDIGW_CORPUS", REPO.parent / "shared" / "corpus")).resolve()
X12_CORPUS = CORPUS / "x12"


@pytest.fixture(scope="session")
def x12_corpus() -> Path:
    if not X12_CORPUS.is_dir():
        pytest.fail(f"the X12 corpus is not at {X12_CORPUS}; set EDIGW_CORPUS")
    return X12_CORPUS
