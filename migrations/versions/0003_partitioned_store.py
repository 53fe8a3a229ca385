"""The store at scale: partitioned ``friendships`` and ``scores`` (PostgreSQL), ``score_staging``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

PostgreSQL only (SQLite keeps the plain tables; it gets ``score_staging`` alone):

* ``friendships`` becomes a native **hash-partitioned** table, ``PARTITION BY HASH (user_lo)``,
  with :data:`DEFAULT_FRIENDSHIP_PARTITIONS` partitions ``friendships_p0`` ... (set another count
  at migration time with ``GRAPHREC_FRIENDSHIP_PARTITIONS=N`` or ``alembic -x
  friendship_partitions=N``; it is fixed afterwards: changing it means re-partitioning). Same
  columns, primary key ``(user_lo, user_hi)``, ``user_lo < user_hi`` check, foreign keys and the
  ``(user_hi, user_lo)`` index, which is a partitioned index: one B-tree per partition.

  **One row per pair, both indexes partitioned** (not both directions stored). The store's API
  and SQLite keep one row per undirected pair (``user_lo < user_hi``), and every reader (the
  snapshot, :mod:`graphrec.store.stream`, the exporters, the serving queries) reads each pair
  once; storing both directions would double the table, its write cost and every import, and
  make the PostgreSQL reads differ from SQLite's. The price: a user's friends are the rows where
  they are ``user_lo`` (one partition, pruned by the hash of the key) plus the rows where they
  are ``user_hi`` (one probe of the ``(user_hi, user_lo)`` index in each partition). Storing both
  directions, partitioned by ``user_id``, would put a user's whole friend list in one partition
  and is the layout to take onto Citus (friendships distributed by user id, co-located with
  ``users``): see docs/store-at-scale.md.

* ``scores`` becomes ``PARTITION BY LIST (run_id)``: one partition ``scores_r<run id>`` per
  scoring run, created in the transaction that writes the run (:mod:`graphrec.store.scores`), so
  an old run goes with ``DROP TABLE`` of its partition instead of a ``DELETE`` of a million rows.
  Same primary key ``(run_id, user_id)``, foreign keys and indexes. Every existing run gets its
  partition here, with its rows. There is no DEFAULT partition: a row of a run without a
  partition (written around the store's API) is refused, and in exchange a publish attaches its
  partition with a SHARE UPDATE EXCLUSIVE lock, so readers of the previous runs never wait for
  the new run's foreign-key validation (with a default partition they waited about 0.7 s per
  million scores at every publish: docs/store-at-scale.md).

* ``score_staging`` (both backends): where distributed scoring workers write their share of a
  run's scores (``COPY`` on PostgreSQL) before one short transaction publishes the run
  (:meth:`GraphStore.publish_staged_runs <graphrec.store.store.GraphStore.publish_staged_runs>`).
  ``UNLOGGED`` on PostgreSQL: its rows are not written to the WAL (about half the write cost), a
  crash empties it, and it is not replicated; readers never read it, and a job that finds rows
  left by a dead job discards them, so nothing is lost that matters.

Both conversions copy the rows (``INSERT ... SELECT``) inside the migration's one transaction;
the downgrade copies them back into plain tables.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from graphrec.errors import InputError

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: Hash partitions of ``friendships`` when nothing else is asked for.
DEFAULT_FRIENDSHIP_PARTITIONS = 16
MAX_FRIENDSHIP_PARTITIONS = 1024

_FRIENDSHIP_FKS = (
    "ADD CONSTRAINT fk_friendships_user_lo_users FOREIGN KEY (user_lo) REFERENCES users (id) ON DELETE CASCADE",
    "ADD CONSTRAINT fk_friendships_user_hi_users FOREIGN KEY (user_hi) REFERENCES users (id) ON DELETE CASCADE",
)
_SCORE_FKS = (
    "ADD CONSTRAINT fk_scores_run_id_scoring_runs FOREIGN KEY (run_id) REFERENCES scoring_runs (id) ON DELETE CASCADE",
    "ADD CONSTRAINT fk_scores_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE",
)


def friendship_partitions() -> int:
    """The number of hash partitions asked for (``-x friendship_partitions=N``, else
    ``GRAPHREC_FRIENDSHIP_PARTITIONS``, else :data:`DEFAULT_FRIENDSHIP_PARTITIONS`)."""
    raw = context.get_x_argument(as_dictionary=True).get("friendship_partitions") or os.environ.get(
        "GRAPHREC_FRIENDSHIP_PARTITIONS", "")
    if not raw:
        return DEFAULT_FRIENDSHIP_PARTITIONS
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_FRIENDSHIP_PARTITIONS:
        raise InputError(f"GRAPHREC_FRIENDSHIP_PARTITIONS (friendship partitions) must be an integer from 1 to "
                         f"{MAX_FRIENDSHIP_PARTITIONS}, got {raw!r}")
    return n


def _create_staging() -> None:
    op.create_table(
        "score_staging",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("token", "kind", "user_id", name=op.f("pk_score_staging")),
        sqlite_with_rowid=False,
        prefixes=["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else [],
    )


def _retire(table: str, old: str, names: Sequence[str]) -> None:
    """Rename ``table`` to ``old`` and drop its constraints and indexes ``names`` (their names
    are taken again by the new table)."""
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name in names:
        if name.startswith("ix_"):
            op.execute(f"DROP INDEX {name}")
        else:
            op.execute(f"ALTER TABLE {old} DROP CONSTRAINT {name}")


def _partition_friendships(n: int) -> None:
    _retire("friendships", "_friendships_plain", ("fk_friendships_user_lo_users", "fk_friendships_user_hi_users",
                                                   "ix_friendships_user_hi_user_lo", "ck_friendships_ordered_pair",
                                                   "pk_friendships"))
    op.execute(
        "CREATE TABLE friendships (user_lo BIGINT NOT NULL, user_hi BIGINT NOT NULL, "
        "CONSTRAINT ck_friendships_ordered_pair CHECK (user_lo < user_hi), "
        "CONSTRAINT pk_friendships PRIMARY KEY (user_lo, user_hi)) PARTITION BY HASH (user_lo)"
    )
    for i in range(n):
        op.execute(f"CREATE TABLE friendships_p{i} PARTITION OF friendships FOR VALUES WITH (MODULUS {n}, REMAINDER {i})")
    op.execute("INSERT INTO friendships (user_lo, user_hi) SELECT user_lo, user_hi FROM _friendships_plain")
    op.execute("DROP TABLE _friendships_plain")
    # secondary index and foreign keys after the copy: one sorted build and one validating join
    op.execute("CREATE INDEX ix_friendships_user_hi_user_lo ON friendships (user_hi, user_lo)")
    for fk in _FRIENDSHIP_FKS:
        op.execute(f"ALTER TABLE friendships {fk}")


def _partition_scores() -> None:
    _retire("scores", "_scores_plain", ("fk_scores_run_id_scoring_runs", "fk_scores_user_id_users", "ix_scores_run_id_score",
                                        "ix_scores_user_id", "pk_scores"))
    op.execute(
        "CREATE TABLE scores (run_id BIGINT NOT NULL, user_id BIGINT NOT NULL, score FLOAT NOT NULL, flagged BOOLEAN NOT NULL, "
        "details JSONB, CONSTRAINT pk_scores PRIMARY KEY (run_id, user_id)) PARTITION BY LIST (run_id)"
    )
    op.execute("CREATE INDEX ix_scores_run_id_score ON scores (run_id, score)")
    op.execute("CREATE INDEX ix_scores_user_id ON scores (user_id)")
    for fk in _SCORE_FKS:
        op.execute(f"ALTER TABLE scores {fk}")
    run_ids = op.get_bind().execute(sa.text("SELECT id FROM scoring_runs ORDER BY id")).scalars().all()
    for rid in run_ids:
        op.execute(f"CREATE TABLE scores_r{int(rid)} PARTITION OF scores FOR VALUES IN ({int(rid)})")
    op.execute("INSERT INTO scores (run_id, user_id, score, flagged, details) "
               "SELECT run_id, user_id, score, flagged, details FROM _scores_plain")
    op.execute("DROP TABLE _scores_plain")


def _unpartition(table: str, columns: str, create: str, after: Sequence[str]) -> None:
    """Copy partitioned ``table`` into a plain table created by ``create`` (named ``_<table>_new``),
    drop the partitioned one (with its partitions), rename the copy and run ``after``."""
    op.execute(create)
    op.execute(f"INSERT INTO _{table}_new ({columns}) SELECT {columns} FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE _{table}_new RENAME TO {table}")
    for stmt in after:
        op.execute(stmt)


def upgrade() -> None:
    _create_staging()
    if op.get_bind().dialect.name != "postgresql":
        return
    _partition_friendships(friendship_partitions())
    _partition_scores()


def downgrade() -> None:
    op.drop_table("score_staging")
    if op.get_bind().dialect.name != "postgresql":
        return
    _unpartition(
        "friendships", "user_lo, user_hi",
        "CREATE TABLE _friendships_new (user_lo BIGINT NOT NULL, user_hi BIGINT NOT NULL)",
        ["ALTER TABLE friendships ADD CONSTRAINT pk_friendships PRIMARY KEY (user_lo, user_hi)",
         "ALTER TABLE friendships ADD CONSTRAINT ck_friendships_ordered_pair CHECK (user_lo < user_hi)",
         "CREATE INDEX ix_friendships_user_hi_user_lo ON friendships (user_hi, user_lo)",
         *(f"ALTER TABLE friendships {fk}" for fk in _FRIENDSHIP_FKS)],
    )
    _unpartition(
        "scores", "run_id, user_id, score, flagged, details",
        "CREATE TABLE _scores_new (run_id BIGINT NOT NULL, user_id BIGINT NOT NULL, score FLOAT NOT NULL, "
        "flagged BOOLEAN NOT NULL, details JSONB)",
        ["ALTER TABLE scores ADD CONSTRAINT pk_scores PRIMARY KEY (run_id, user_id)",
         "CREATE INDEX ix_scores_run_id_score ON scores (run_id, score)",
         "CREATE INDEX ix_scores_user_id ON scores (user_id)",
         *(f"ALTER TABLE scores {fk}" for fk in _SCORE_FKS)],
    )
