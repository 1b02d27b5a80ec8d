"""Asked questions remember who asked, pseudonymously, to cap one client's share of the queue.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``client`` is a keyed hash of the API token id or the client address (never the address
itself); the TAs' queue takes at most a few open questions per client, so one client's
flood of asks cannot bury everyone else's.
"""

# Plain ALTER TABLE (SQLite adds and drops columns itself): a batch table copy would
# drop the table, which its foreign keys refuse once rows refer to it.

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ask_log", sa.Column("client", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("ask_log", "client")
