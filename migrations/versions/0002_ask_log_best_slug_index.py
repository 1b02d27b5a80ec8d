"""index ask_log.best_slug for the per-entry feedback pages

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ask_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ask_log_best_slug_abstained", ["best_slug", "abstained"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ask_log", schema=None) as batch_op:
        batch_op.drop_index("ix_ask_log_best_slug_abstained")
