"""Initial schema: users, features, friendships, blocks, labels, circles, model and scoring runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Frozen copy of the schema as of this revision (migrations never import the live models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "store_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_store_revision_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_revision")),
    )
    op.execute("INSERT INTO store_revision (id, revision, updated_at) VALUES (1, 0, CURRENT_TIMESTAMP)")

    op.create_table(
        "users",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("attributes", JSON, nullable=True),
        sa.Column("features", sa.LargeBinary(), nullable=True),
        sa.Column("is_synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("external_id", name=op.f("uq_users_external_id")),
    )
    op.create_index(op.f("ix_users_is_synthetic"), "users", ["is_synthetic"])

    op.create_table(
        "feature_columns",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_feature_columns")),
        sa.UniqueConstraint("name", name=op.f("uq_feature_columns_name")),
    )

    op.create_table(
        "friendships",
        sa.Column("user_lo", ID, nullable=False),
        sa.Column("user_hi", ID, nullable=False),
        sa.CheckConstraint("user_lo < user_hi", name=op.f("ck_friendships_ordered_pair")),
        sa.ForeignKeyConstraint(["user_lo"], ["users.id"], ondelete="CASCADE", name=op.f("fk_friendships_user_lo_users")),
        sa.ForeignKeyConstraint(["user_hi"], ["users.id"], ondelete="CASCADE", name=op.f("fk_friendships_user_hi_users")),
        sa.PrimaryKeyConstraint("user_lo", "user_hi", name=op.f("pk_friendships")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_friendships_user_hi_user_lo", "friendships", ["user_hi", "user_lo"])

    op.create_table(
        "blocks",
        sa.Column("blocker_id", ID, nullable=False),
        sa.Column("blocked_id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("blocker_id <> blocked_id", name=op.f("ck_blocks_not_self")),
        sa.ForeignKeyConstraint(["blocker_id"], ["users.id"], ondelete="CASCADE", name=op.f("fk_blocks_blocker_id_users")),
        sa.ForeignKeyConstraint(["blocked_id"], ["users.id"], ondelete="CASCADE", name=op.f("fk_blocks_blocked_id_users")),
        sa.PrimaryKeyConstraint("blocker_id", "blocked_id", name=op.f("pk_blocks")),
    )
    op.create_index("ix_blocks_blocked_id", "blocks", ["blocked_id"])

    op.create_table(
        "labels",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE", name=op.f("fk_labels_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", "source", name=op.f("pk_labels")),
    )
    op.create_index(op.f("ix_labels_label"), "labels", ["label"])

    op.create_table(
        "circles",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("owner_id", ID, nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE", name=op.f("fk_circles_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_circles")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_circles_owner_id_name")),
    )
    op.create_table(
        "circle_members",
        sa.Column("circle_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.ForeignKeyConstraint(["circle_id"], ["circles.id"], ondelete="CASCADE", name=op.f("fk_circle_members_circle_id_circles")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE", name=op.f("fk_circle_members_user_id_users")),
        sa.PrimaryKeyConstraint("circle_id", "user_id", name=op.f("pk_circle_members")),
    )
    op.create_index("ix_circle_members_user_id", "circle_members", ["user_id"])

    op.create_table(
        "model_runs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("params", JSON, nullable=True),
        sa.Column("metrics", JSON, nullable=True),
        sa.Column("data_revision", sa.BigInteger(), nullable=True),
        sa.Column("data_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("artifact_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("status IN ('running', 'completed', 'failed')", name=op.f("ck_model_runs_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_runs")),
        sa.UniqueConstraint("version", name=op.f("uq_model_runs_version")),
    )
    op.create_index(op.f("ix_model_runs_kind"), "model_runs", ["kind"])

    op.create_table(
        "scoring_runs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("model_run_id", ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("n_scored", sa.BigInteger(), nullable=False),
        sa.Column("n_flagged", sa.BigInteger(), nullable=False),
        sa.Column("summary", JSON, nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("status IN ('running', 'complete', 'failed')", name=op.f("ck_scoring_runs_status")),
        sa.ForeignKeyConstraint(
            ["model_run_id"], ["model_runs.id"], ondelete="SET NULL", name=op.f("fk_scoring_runs_model_run_id_model_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_runs")),
        sa.UniqueConstraint("kind", "run_date", name=op.f("uq_scoring_runs_kind_run_date")),
    )
    op.create_table(
        "scores",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("details", JSON, nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["scoring_runs.id"], ondelete="CASCADE", name=op.f("fk_scores_run_id_scoring_runs")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE", name=op.f("fk_scores_user_id_users")),
        sa.PrimaryKeyConstraint("run_id", "user_id", name=op.f("pk_scores")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_scores_run_id_score", "scores", ["run_id", "score"])
    op.create_index("ix_scores_user_id", "scores", ["user_id"])

    op.create_table(
        "job_locks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_locks")),
    )


def downgrade() -> None:
    for table in (
        "job_locks",
        "scores",
        "scoring_runs",
        "model_runs",
        "circle_members",
        "circles",
        "labels",
        "blocks",
        "friendships",
        "feature_columns",
        "users",
        "store_revision",
    ):
        op.drop_table(table)
