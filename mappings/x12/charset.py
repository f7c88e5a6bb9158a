"""X12 character classes for checks on data: digits are ASCII 0-9, letters ASCII A-Z a-z.

str.isdigit, isalnum and isalpha accept any Unicode digit or letter: a superscript two
(Latin-1 0xB2), an Arabic-Indic three. int() then refuses some of them and X12 allows
none, so values read from a file are checked with these instead.
"""

from __future__ import annotations


def is_digits(value: str) -> bool:
    """One or more of 0-9 and nothing else."""
    return value.isascii() and value.isdigit()


def is_alnum(value: str) -> bool:
    """One or more of A-Z, a-z, 0-9 and nothing else."""
    return value.isascii() and value.isalnum()


def is_alpha(value: str) -> bool:
    """One or more of A-Z, a-z and nothing else."""
    return value.isascii() and value.isalpha()
