"""CSV `each: rows` with `group_by:`: flat rows into a hierarchy (shipment -> order -> carton)."""

from __future__ import annotations

import pytest

from canonical.errors import MappingFileError
from mappings.language import load_mapping

pytestmark = pytest.mark.unit

ROWS = """shipment,po,carton,sku,qty
S1,P1,C1,A,1
S1,P2,C2,B,2
S1,P1,C1,C,3
S1,P1,C3,D,4
S2,P9,C9,E,5
"""
MAPPING = """format: csv
csv: {group_by: shipment}
fields:
  shipment_id: shipment
  orders:
    each: rows
    group_by: po
    fields:
      po_number: po
      packs:
        each: rows
        group_by: carton
        fields:
          carton: carton
          skus: {each: rows, value: sku}
"""


def test_rows_group_by_column_in_first_seen_order(tmp_path):
    (tmp_path / "m.yaml").write_text(MAPPING)
    docs = load_mapping(tmp_path / "m.yaml").map_csv(ROWS)
    assert docs[0] == {"shipment_id": "S1", "orders": [
        {"po_number": "P1", "packs": [{"carton": "C1", "skus": ["A", "C"]},
                                      {"carton": "C3", "skus": ["D"]}]},
        {"po_number": "P2", "packs": [{"carton": "C2", "skus": ["B"]}]}]}
    assert docs[1]["orders"] == [{"po_number": "P9", "packs": [{"carton": "C9", "skus": ["E"]}]}]


def test_group_by_is_for_csv_only(tmp_path):
    (tmp_path / "m.yaml").write_text('format: json\nfields:\n  x: {each: /a, group_by: b, '
                                     'fields: {y: c}}\n')
    with pytest.raises(MappingFileError, match=r"m.yaml:3: fields.x.group_by: group_by: groups CSV"):
        load_mapping(tmp_path / "m.yaml")


def test_tracking_counts_the_grouping_column_as_read(tmp_path):
    (tmp_path / "m.yaml").write_text(MAPPING)
    m = load_mapping(tmp_path / "m.yaml", track=True)
    m.map_csv(ROWS, file="f.csv")
    assert ("f.csv", 2, "po") in m.reads and ("f.csv", 2, "carton") in m.reads
    assert ("f.csv", 2, "qty") not in m.reads
