"""record which format the stored index units were built with

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Index units gained a whole-answer kind and a new tokenisation of Latin words in Japanese
text (format 2, ``knowledge.entry_store.UNITS_FORMAT``). Units built before are format 1 and
are rebuilt by the next ``kb import`` or ``kb reindex``; a database without units has
nothing to rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kb_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("units_format", sa.Integer(), nullable=False, server_default="1")
        )
    op.execute("UPDATE kb_state SET units_format = 2 WHERE NOT EXISTS (SELECT 1 FROM index_units)")


def downgrade() -> None:
    with op.batch_alter_table("kb_state", schema=None) as batch_op:
        batch_op.drop_column("units_format")
