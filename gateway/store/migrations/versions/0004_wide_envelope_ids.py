"""Envelope ids as wide as a malformed ISA can make them.

An interchange whose ISA13 or sender id is longer than X12 allows is still recorded (it
gets its TA1); at 9/15/2 characters PostgreSQL refused the row and the validate item was
retried forever instead. 255 is far beyond any legal value; longer ones are cut to it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WIDE = 255
COLUMNS = {
    "interchanges": {"sender_qualifier": 2, "sender_id": 15, "receiver_qualifier": 2,
                     "receiver_id": 15, "isa13": 9},
    "acknowledgments": {"answers_interchange": 9, "answers_group": 9},
}
NULLABLE = {"answers_group"}


def _alter(widths: dict[str, dict[str, int]], to_wide: bool) -> None:
    for table, columns in widths.items():
        with op.batch_alter_table(table) as batch:
            for name, narrow in columns.items():
                old, new = (narrow, WIDE) if to_wide else (WIDE, narrow)
                batch.alter_column(name, type_=sa.String(new), existing_type=sa.String(old),
                                   existing_nullable=name in NULLABLE)


def upgrade() -> None:
    _alter(COLUMNS, to_wide=True)


def downgrade() -> None:
    _alter(COLUMNS, to_wide=False)
