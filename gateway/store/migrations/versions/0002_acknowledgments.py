"""Outbound acknowledgments (997/999/TA1), kept from validation until written to the partner.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acknowledgments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("interchange_id", ID, nullable=True),
        sa.Column("partner", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("answers_interchange", sa.String(9), nullable=False),
        sa.Column("answers_group", sa.String(9), nullable=True),
        sa.Column("control_number", sa.BigInteger(), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acknowledgments")),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name=op.f("fk_acknowledgments_message_id_messages")),
        sa.ForeignKeyConstraint(["interchange_id"], ["interchanges.id"],
                                name=op.f("fk_acknowledgments_interchange_id_interchanges")),
        sa.ForeignKeyConstraint(["payload_sha256"], ["payloads.sha256"],
                                name=op.f("fk_acknowledgments_payload_sha256_payloads")),
        sa.UniqueConstraint("partner", "kind", "control_number",
                            name=op.f("uq_acknowledgments_partner_kind_control_number")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_acknowledgments_message_id"), "acknowledgments", ["message_id"])


def downgrade() -> None:
    op.drop_table("acknowledgments")
