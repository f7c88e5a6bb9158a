"""Webhook ids: the idempotency key of a partner's webhook, and the message it became.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_ids",
        sa.Column("partner", sa.String(100), nullable=False),
        sa.Column("webhook_id", sa.String(255), nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("partner", "webhook_id", name=op.f("pk_webhook_ids")),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name=op.f("fk_webhook_ids_message_id_messages")),
    )
    op.create_index(op.f("ix_webhook_ids_message_id"), "webhook_ids", ["message_id"])


def downgrade() -> None:
    op.drop_table("webhook_ids")
