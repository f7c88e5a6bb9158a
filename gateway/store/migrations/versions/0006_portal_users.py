"""Portal users (partner people who sign in to upload CSV) and the uploads they made.

A portal user belongs to one partner and signs in with a password kept only as an argon2
hash. An upload row names the message its file became (the message's own row says how
far the pipeline got), the file name the partner's browser gave, and who sent it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "portal_users",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("partner", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("disabled_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_users")),
        sa.UniqueConstraint("username", name=op.f("uq_portal_users_username")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "portal_uploads",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("partner", sa.String(100), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("original_name", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_portal_uploads")),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name=op.f("fk_portal_uploads_message_id_messages")),
    )
    op.create_index(op.f("ix_portal_uploads_partner_uploaded_at"), "portal_uploads",
                    ["partner", "uploaded_at"])


def downgrade() -> None:
    op.drop_table("portal_uploads")
    op.drop_table("portal_users")
