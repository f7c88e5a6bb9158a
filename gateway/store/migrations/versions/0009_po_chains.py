"""Purchase order chains: their documents and lines, the exceptions emitted, the deadlines.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.Column:
    return sa.Column("id", ID, autoincrement=True, nullable=False)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.{'event_id' if target == 'events' else 'id'}"],
                                   name=op.f(f"fk_{table}_{column}_{target}"))


def upgrade() -> None:
    op.create_table(
        "po_chains", _id(),
        sa.Column("partner", sa.String(100), nullable=False),
        sa.Column("po_number", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(16), nullable=True),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_po_chains")),
        sa.UniqueConstraint("partner", "po_number", name=op.f("uq_po_chains_partner_po_number")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_po_chains_state_id"), "po_chains", ["state", "id"])
    op.create_table(
        "po_chain_documents", _id(),
        sa.Column("chain_id", ID, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("doc_key", sa.String(100), nullable=False),
        sa.Column("number", sa.String(100), nullable=True),
        sa.Column("x12control", sa.String(255), nullable=True),
        sa.Column("message_id", ID, nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("observed_at", TS, nullable=False),
        sa.Column("facts", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_po_chain_documents")),
        _fk("po_chain_documents", "chain_id", "po_chains"),
        _fk("po_chain_documents", "message_id", "messages"),
        sa.UniqueConstraint("chain_id", "type", "doc_key",
                            name=op.f("uq_po_chain_documents_chain_id_type_doc_key")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "po_chain_lines", _id(),
        sa.Column("document_id", ID, nullable=False),
        sa.Column("line_number", sa.String(20), nullable=True),
        sa.Column("item_ids", JSON, nullable=False),
        sa.Column("quantity", sa.String(40), nullable=True),
        sa.Column("unit", sa.String(35), nullable=True),
        sa.Column("unit_price", sa.String(40), nullable=True),
        sa.Column("dates", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_po_chain_lines")),
        _fk("po_chain_lines", "document_id", "po_chain_documents"),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_po_chain_lines_document_id"), "po_chain_lines", ["document_id"])
    op.create_table(
        "po_chain_findings", _id(),
        sa.Column("chain_id", ID, nullable=False),
        sa.Column("finding_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("routed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_po_chain_findings")),
        _fk("po_chain_findings", "chain_id", "po_chains"),
        _fk("po_chain_findings", "event_id", "events"),
        sa.UniqueConstraint("chain_id", "finding_key",
                            name=op.f("uq_po_chain_findings_chain_id_finding_key")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_po_chain_findings_routed_at"), "po_chain_findings", ["routed_at"])
    op.create_table(
        "po_chain_deadlines", _id(),
        sa.Column("chain_id", ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_po_chain_deadlines")),
        _fk("po_chain_deadlines", "chain_id", "po_chains"),
        sa.UniqueConstraint("chain_id", "kind", name=op.f("uq_po_chain_deadlines_chain_id_kind")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_po_chain_deadlines_state_due_at"), "po_chain_deadlines",
                    ["state", "due_at"])


def downgrade() -> None:
    for table in ("po_chain_deadlines", "po_chain_findings", "po_chain_lines",
                  "po_chain_documents", "po_chains"):
        op.drop_table(table)
