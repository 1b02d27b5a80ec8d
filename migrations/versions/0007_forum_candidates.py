"""Forum mining: candidate entries and the threads already mined.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("existing_slug", sa.String(length=120), nullable=True),
        sa.Column("asked_count", sa.Integer(), nullable=False),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column("staff_answered", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("question", sa.JSON(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("phrasings", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("suggested_runner", sa.String(length=64), nullable=True),
        sa.Column("vector_sum", sa.LargeBinary(), nullable=False),
        sa.Column("entry_slug", sa.String(length=120), nullable=True),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_candidates_course_id_courses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
    )
    op.create_index(
        "ix_candidates_course_status_score",
        "candidates",
        ["course_id", "status", "score"],
        unique=False,
    )
    op.create_table(
        "mined_threads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("forum", sa.String(length=16), nullable=False),
        sa.Column("thread_id", sa.String(length=200), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("staff_answered", sa.Boolean(), nullable=False),
        sa.Column("mined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_mined_threads_candidate_id_candidates"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_mined_threads_course_id_courses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mined_threads")),
        sa.UniqueConstraint(
            "course_id", "forum", "thread_id", name=op.f("uq_mined_threads_course_id")
        ),
    )
    op.create_index(
        op.f("ix_mined_threads_candidate_id"), "mined_threads", ["candidate_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_mined_threads_candidate_id"), table_name="mined_threads")
    op.drop_table("mined_threads")
    op.drop_index("ix_candidates_course_status_score", table_name="candidates")
    op.drop_table("candidates")
