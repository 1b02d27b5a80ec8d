"""Feedback can name the entry that should have answered (a declined question).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

A student rating a decline can pick one of the related entries ("this should have been
answered by X"); the vote of one asked question can be changed (one row per ask).
"""

# Plain ALTER TABLE (SQLite adds and drops columns itself): a batch table copy would
# drop the table, which its foreign keys refuse once rows refer to it.

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("suggested_slug", sa.String(length=120), nullable=True))
    op.add_column("feedback", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("feedback", "updated_at")
    op.drop_column("feedback", "suggested_slug")
