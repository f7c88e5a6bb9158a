"""Format readers (X12, CSV, JSON), the mapping language and the mapping files."""
