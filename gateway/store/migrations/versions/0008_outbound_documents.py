"""Outbound documents (purchase orders to partners), and the send work item's document.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "outbound_documents",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("partner", sa.String(100), nullable=False),
        sa.Column("document_type", sa.String(8), nullable=False),
        sa.Column("po_number", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("isa13", sa.BigInteger(), nullable=False),
        sa.Column("gs06", sa.BigInteger(), nullable=False),
        sa.Column("st02", sa.BigInteger(), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("ack_message_id", ID, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_documents")),
        sa.ForeignKeyConstraint(["payload_sha256"], ["payloads.sha256"],
                                name=op.f("fk_outbound_documents_payload_sha256_payloads")),
        sa.ForeignKeyConstraint(["ack_message_id"], ["messages.id"],
                                name=op.f("fk_outbound_documents_ack_message_id_messages")),
        sa.UniqueConstraint("partner", "document_type", "po_number", "content_sha256",
                            name=op.f("uq_outbound_documents_partner_document_type_po_number_"
                                      "content_sha256")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_outbound_documents_partner_gs06_st02"), "outbound_documents",
                    ["partner", "gs06", "st02"])
    op.create_index(op.f("ix_outbound_documents_partner_po_number"), "outbound_documents",
                    ["partner", "po_number"])
    op.create_index(op.f("ix_outbound_documents_status"), "outbound_documents", ["status"])
    with op.batch_alter_table("work_items") as batch:
        batch.add_column(sa.Column("document_id", ID, nullable=True))
        batch.create_foreign_key(op.f("fk_work_items_document_id_outbound_documents"),
                                 "outbound_documents", ["document_id"], ["id"])
        batch.create_index(op.f("ix_work_items_document_id"), ["document_id"])


def downgrade() -> None:
    with op.batch_alter_table("work_items") as batch:
        batch.drop_index(op.f("ix_work_items_document_id"))
        batch.drop_constraint(op.f("fk_work_items_document_id_outbound_documents"),
                              type_="foreignkey")
        batch.drop_column("document_id")
    op.drop_table("outbound_documents")
