"""The `outbound:` block of a partner file: our ids toward the partner and its mappings."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import partners
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def test_globex_sends_purchase_orders_from_our_ids_to_its_own() -> None:
    p = partners.load(REPO / "conf/partners/globex.yaml", mappings_root=REPO / "mappings")
    assert p.outbound is not None
    assert (p.outbound.sender, p.outbound.gs_sender) == (("ZZ", "DISTRIBUTOR"), "DISTRIBUTOR")
    assert (p.outbound.receiver, p.outbound.gs_receiver) == (("ZZ", "GLOBEX"), "GLOBEX")
    assert p.outbound.usage == "P"
    assert p.outbound.mappings["850"].name == "850.outbound.yaml"
    acme = partners.load(REPO / "conf/partners/acme.yaml", mappings_root=REPO / "mappings")
    assert acme.outbound is None


@pytest.mark.parametrize(("text", "says"), [
    ("outbound:\n  isa: {qualifier: ZZ, id: US}\n  mappings: {'850': nope.yaml}\n",
     r"x\.yaml:\d+: outbound: sending needs the partner's ids"),
    ("x12: {isa: [{qualifier: ZZ, id: X}]}\n"
     "outbound:\n  isa: {qualifier: ZZ, id: US}\n  mappings: {'850': nope.yaml}\n",
     r"x\.yaml:6: outbound\.mappings\.850: nope\.yaml not found"),
    ("outbound:\n  isa: {qualifier: ZZ, id: US}\n  colour: red\n  mappings: {}\n",
     r"x\.yaml:5: outbound\.colour: unknown key 'colour'"),
    ("outbound:\n  mappings: {'850': a.yaml}\n", r"outbound: 'isa' is a required property"),
])
def test_mistakes_name_the_file_line_and_key(tmp_path: Path, text: str, says: str) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("id: x\nname: X\n" + text)
    with pytest.raises(partners.PartnerConfigError, match=says):
        partners.load(f, mappings_root=REPO / "mappings")
