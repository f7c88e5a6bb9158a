"""The generated channel references (ERP outputs, each input's config table) are up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels import reference

pytestmark = pytest.mark.unit

PAGE = Path(__file__).resolve().parents[2] / "docs" / "erp-outputs.md"


def test_the_reference_page_is_current() -> None:
    assert PAGE.read_text(encoding="utf-8") == reference.render(), (
        "docs/erp-outputs.md is stale: run python -m channels.reference docs/erp-outputs.md")


@pytest.mark.parametrize("kind", sorted(reference.registry.INPUTS))
def test_each_input_page_holds_its_current_config_table(kind: str) -> None:
    page = (PAGE.parent / "channels" / f"{kind}.md").read_text(encoding="utf-8")
    start = page.index(f"<!-- generated: {kind} config -->\n") + len(f"<!-- generated: {kind} config -->\n")
    end = page.index("<!-- end generated -->")
    assert page[start:end] == reference.input_table(kind), (
        f"docs/channels/{kind}.md is stale: paste python -m channels.reference --input {kind}"
        " between its generated markers")
