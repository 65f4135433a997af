"""The ETA a queued request was told, next to its real wait (``queued_ms``).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot alter a table in place (it adds a nullable column fine, but
    # the downgrade's drop needs the copy)
    with op.batch_alter_table("llm_requests") as batch:
        batch.add_column(sa.Column("eta_ms", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("llm_requests") as batch:
        batch.drop_column("eta_ms")
