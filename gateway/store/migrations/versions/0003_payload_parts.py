"""Large payloads kept in parts: the first in payloads.data, the rest in payload_parts.

A 100 MB file written as one row is one long transaction holding SQLite's write lock,
and one 100 MB buffer in the writer and in every reader; in parts of a megabyte each
part is its own short transaction and a reader holds one part at a time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payloads") as batch:
        batch.add_column(sa.Column("parts", sa.Integer(), nullable=False,
                                   server_default=sa.text("1")))
    op.create_table(
        "payload_parts",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "part", name=op.f("pk_payload_parts")),
    )


def downgrade() -> None:
    op.drop_table("payload_parts")
    with op.batch_alter_table("payloads") as batch:
        batch.drop_column("parts")
