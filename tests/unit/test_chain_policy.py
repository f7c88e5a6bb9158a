"""docs/chains.md holds the current reference of the partners' `chains:` block."""

from __future__ import annotations

import pytest

from gateway.chains import agreement
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def test_the_chains_page_holds_the_current_policy_table() -> None:
    page = (REPO / "docs" / "chains.md").read_text("utf-8")
    assert agreement.reference_table() in page, (
        "docs/chains.md is stale: paste gateway.chains.agreement.reference_table() into it")


def test_the_table_would_see_a_change() -> None:
    assert "`late_days` | `0`" in agreement.reference_table()


def _partner(tmp_path, block: str):  # type: ignore[no-untyped-def]
    from gateway import partners

    f = tmp_path / "zed.yaml"
    f.write_text("id: zed\nname: Zed\n" + block, "utf-8")
    return partners.load(f, mappings_root=REPO / "mappings")


def test_a_partner_without_a_chains_block_gets_the_defaults(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.chains import correlate, variances  # noqa: F401 - the defaults' users

    p = _partner(tmp_path, "")
    assert p.chains is None
    assert correlate.policy_of(None, "zed") == agreement.DEFAULT
    assert agreement.DEFAULT.ack_within_hours == 24 and agreement.DEFAULT.expects == [
        "855", "856", "810"]


def test_a_chains_block_is_checked_with_file_line_and_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.partners import PartnerConfigError

    p = _partner(tmp_path, "chains:\n  quantity: {percent: 5, absolute: 1}\n  late_days: 2\n")
    assert p.chains is not None and str(p.chains.quantity.allowed(agreement.Decimal(100))) == "5"
    with pytest.raises(PartnerConfigError) as bad:
        _partner(tmp_path, "chains:\n  late_days: 2\n  quantity: {percent: -5}\n")
    assert bad.value.line == 5 and bad.value.key == "chains.quantity.percent"
    with pytest.raises(PartnerConfigError, match=r"chains\.quantiy"):
        _partner(tmp_path, "chains:\n  quantiy: {percent: 5}\n")
