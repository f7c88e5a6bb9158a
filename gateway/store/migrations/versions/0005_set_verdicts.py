"""Validation verdicts kept for the map stage: set_verdicts.

The map stage used to take the validator's result from the memory of the process that
validated, or validate the whole file again (another worker, a restart, a replay). Now
the validate stage keeps each set's (or CSV/JSON document's) verdict, compressed in
chunks, in the same transaction that enqueues the map item.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "set_verdicts",
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name=op.f("fk_set_verdicts_message_id_messages")),
        sa.PrimaryKeyConstraint("message_id", "chunk", name=op.f("pk_set_verdicts")),
    )


def downgrade() -> None:
    op.drop_table("set_verdicts")
