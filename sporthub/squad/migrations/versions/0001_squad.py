"""The squad's consent record, files, session and wellness rows, and read log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "squad_consent",
        sa.Column("athlete", sa.String(255), primary_key=True),
        sa.Column("share", sa.Boolean, nullable=False),
        sa.Column("changed_at", WHEN, nullable=False),
        sa.Column("guardian", sa.String(255)),
        sa.Column("guardian_at", WHEN),
        sa.Column("last_sync", WHEN),
    )
    op.create_table(
        "squad_consent_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("athlete", sa.String(255), nullable=False, index=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("change", sa.String(64), nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("address", sa.String(64)),
        sa.Column("detail", sa.String(255)),
    )
    op.create_table(
        "squad_files",
        sa.Column("athlete", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("stored_at", WHEN, nullable=False),
    )
    op.create_table(
        "squad_sessions",
        sa.Column("athlete", sa.String(255), primary_key=True),
        sa.Column("file", sa.String(255), primary_key=True),
        sa.Column("row", sa.Text, nullable=False),
    )
    op.create_table(
        "squad_wellness",
        sa.Column("athlete", sa.String(255), primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("row", sa.Text, nullable=False),
    )
    op.create_table(
        "squad_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("reader", sa.String(255), nullable=False),
        sa.Column("athlete", sa.String(255), nullable=False, index=True),
        sa.Column("what", sa.String(255), nullable=False),
        sa.Column("address", sa.String(64)),
    )


def downgrade() -> None:
    for table in ("squad_reads", "squad_wellness", "squad_sessions", "squad_files",
                  "squad_consent_events", "squad_consent"):
        op.drop_table(table)
