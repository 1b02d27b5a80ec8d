"""A course can say where questions outside its Q&A belong (logistics, other subjects).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``help_text`` holds a sentence per language ({"en": ..., "ja": ...}) and ``help_url`` a
link (the course page, its forum); a declined question that no entry is close to shows
them instead of related entries.
"""

# Plain ALTER TABLE (SQLite adds and drops columns itself): a batch table copy would
# drop the table, which its foreign keys refuse once rows refer to it.

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("courses", sa.Column("help_text", sa.JSON(), nullable=True))
    op.add_column("courses", sa.Column("help_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    op.drop_column("courses", "help_url")
    op.drop_column("courses", "help_text")
