"""The generated ERP outputs reference is up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels import reference

pytestmark = pytest.mark.unit

PAGE = Path(__file__).resolve().parents[2] / "docs" / "erp-outputs.md"


def test_the_reference_page_is_current() -> None:
    assert PAGE.read_text(encoding="utf-8") == reference.render(), (
        "docs/erp-outputs.md is stale: run python -m channels.reference docs/erp-outputs.md")
