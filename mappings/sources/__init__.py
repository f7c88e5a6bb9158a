"""Source trees the mapping language reads: X12 loop trees, CSV rows, JSON documents."""
