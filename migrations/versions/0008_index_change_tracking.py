"""track which entries changed at which knowledge version, and the index epoch

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

``entries.changed_in`` lets a web process catch its index up by reloading only the
entries changed since its version; ``kb_state.epoch`` changes when everything must be
reloaded (and names the index snapshots that are valid). Existing entries start at 0,
so an index built before the upgrade is caught up by a full load, as before.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch copy of ``entries``: on SQLite a batch drops the old
    # table, and its foreign keys would take the units, citations and revisions with it.
    op.add_column(
        "entries", sa.Column("changed_in", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_index("ix_entries_changed_in", "entries", ["changed_in"], unique=False)
    with op.batch_alter_table("kb_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("epoch", sa.String(length=32), nullable=False, server_default="")
        )
    op.execute(sa.text("UPDATE kb_state SET epoch = :epoch").bindparams(epoch=uuid.uuid4().hex))


def downgrade() -> None:
    with op.batch_alter_table("kb_state", schema=None) as batch_op:
        batch_op.drop_column("epoch")
    op.drop_index("ix_entries_changed_in", table_name="entries")
    # SQLite (3.35 and later) drops a column in place, as PostgreSQL does.
    op.execute("ALTER TABLE entries DROP COLUMN changed_in")
