"""A course can say where questions outside its Q&A belong (logistics, other subjects).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``help_text`` holds a sentence per language ({"en": ..., "ja": ...}) and ``help_url`` a
link (the course page, its forum); a declined question that no entry is close to shows
them instead of related entries.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("courses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("help_text", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("help_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("courses", schema=None) as batch_op:
        batch_op.drop_column("help_url")
        batch_op.drop_column("help_text")
