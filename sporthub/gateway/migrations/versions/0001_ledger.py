"""The request ledger.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255)),
        sa.Column("backend", sa.String(64)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("queued_ms", sa.Float),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("duration_ms", sa.Float),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
    )
    op.create_index("ix_llm_requests_user_started", "llm_requests", ["user", "started_at"])
    op.create_index("ix_llm_requests_started", "llm_requests", ["started_at"])


def downgrade() -> None:
    op.drop_table("llm_requests")
