"""The graph store's schema: SQLAlchemy 2 typed declarative models.

Conventions
-----------
* Every user has an internal integer ``id`` (what foreign keys use) and a unique, immutable
  ``external_id`` (the id as it was imported, kept as text). Public APIs speak external ids.
* **Friendships are undirected, stored once per pair** with ``user_lo < user_hi`` (internal
  ids); a CHECK constraint forbids self-loops and the reversed duplicate, the primary key forbids
  exact duplicates. ``(user_hi, user_lo)`` is indexed so neighbour lookups are two index scans.
  On PostgreSQL the table is hash-partitioned by ``user_lo`` (migration 0003), the index too.
* The numeric **feature vector** of a user is stored in ``users.features`` as a compact binary
  blob (see :mod:`graphrec.store.vectors`); ``feature_columns`` names each position. Vectors shorter
  than the current number of columns read as zero-padded (a column added later is 0 for old users).
* Non-numeric profile attributes live in ``users.attributes`` (JSON object of strings).
* Users are soft-deleted (``deleted_at``); snapshots, neighbours and recommendations skip them.
* ``store_revision`` holds a single counter bumped by every write transaction: the store's *data
  version*, recorded by snapshots and model runs for reproducibility.
* Model runs, scoring runs and per-run scores are here from the start so later features (link
  prediction, nightly bot/anomaly scoring) do not churn the schema. On PostgreSQL ``scores`` is
  list-partitioned by run (one partition per run, dropped with the run); ``score_staging`` holds
  the scores distributed workers write before a run is published (see docs/store-at-scale.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# BIGINT on PostgreSQL; INTEGER on SQLite, where only "INTEGER PRIMARY KEY" aliases the rowid.
IdType = BigInteger().with_variant(Integer(), "sqlite")
JsonType = JSON().with_variant(JSONB(), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored as naive UTC, returned as aware UTC on every backend.

    SQLite has no time zones; storing naive UTC everywhere keeps both backends identical.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention (needed by Alembic on SQLite)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class StoreRevision(Base):
    """Single-row counter bumped by every write transaction (the store's data version)."""

    __tablename__ = "store_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class User(Base):
    """A user of the social network (real or synthetic)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    features: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    is_synthetic: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FeatureColumn(Base):
    """Name of each position of the users' feature vectors (0-based, append-only)."""

    __tablename__ = "feature_columns"

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Friendship(Base):
    """An undirected friendship, stored once with ``user_lo < user_hi`` (internal ids)."""

    __tablename__ = "friendships"

    user_lo: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    user_hi: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (
        CheckConstraint("user_lo < user_hi", name="ordered_pair"),
        Index("ix_friendships_user_hi_user_lo", "user_hi", "user_lo"),
        # documents migration 0003 (migrations create the tables; SQLite keeps a plain table)
        {"sqlite_with_rowid": False, "postgresql_partition_by": "HASH (user_lo)"},
    )


class Block(Base):
    """``blocker`` blocked ``blocked``: neither is ever recommended to the other."""

    __tablename__ = "blocks"

    blocker_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    blocked_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (
        CheckConstraint("blocker_id <> blocked_id", name="not_self"),
        Index("ix_blocks_blocked_id", "blocked_id"),
    )


class Label(Base):
    """A label on a user (e.g. ``bot``/``human``) from one source; one current label per source."""

    __tablename__ = "labels"

    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Circle(Base):
    """A named group of users (e.g. an ego-Facebook social circle), optionally owned by a user."""

    __tablename__ = "circles"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    source: Mapped[str] = mapped_column(String(64), nullable=False, default="import")

    __table_args__ = (UniqueConstraint("owner_id", "name"),)


class CircleMember(Base):
    """Membership of a user in a circle."""

    __tablename__ = "circle_members"

    circle_id: Mapped[int] = mapped_column(IdType, ForeignKey("circles.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_circle_members_user_id", "user_id"),)


class ModelRun(Base):
    """One training run of a model: params, seed, metrics, the data version it saw, its artifact."""

    __tablename__ = "model_runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    version: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    data_revision: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    data_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    artifact_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint("status IN ('running', 'completed', 'failed')", name="status"),
    )


class ScoringRun(Base):
    """One batch scoring run (e.g. the nightly bot scores) for one kind and run date.

    Readers use the latest run with ``status = 'complete'``; a run becomes complete in the same
    transaction that writes its scores, so a half-written run is never visible.
    """

    __tablename__ = "scoring_runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    run_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    model_run_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("model_runs.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_scored: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    n_flagged: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("kind", "run_date"),
        CheckConstraint("status IN ('running', 'complete', 'failed')", name="status"),
    )


class Score(Base):
    """A user's score in one scoring run, with whether it crossed the run's threshold."""

    __tablename__ = "scores"

    run_id: Mapped[int] = mapped_column(IdType, ForeignKey("scoring_runs.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    flagged: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)

    __table_args__ = (
        Index("ix_scores_run_id_score", "run_id", "score"),
        Index("ix_scores_user_id", "user_id"),
        # documents migration 0003: one partition ``scores_r<run id>`` per run on PostgreSQL
        {"sqlite_with_rowid": False, "postgresql_partition_by": "LIST (run_id)"},
    )


class ScoreStaging(Base):
    """Scores a distributed scoring job's workers wrote for a run not yet published.

    Keyed by (``token``, ``kind``, ``user_id``): ``token`` names one job's run, a worker retried
    after it wrote rewrites the same rows instead of adding duplicates. Publishing moves a
    token's rows into ``scores`` in one transaction; readers never read this table. UNLOGGED on
    PostgreSQL (set by migration 0003: no WAL, emptied by a crash, which only loses what a dead
    job left behind). No foreign keys: rows are checked when published."""

    __tablename__ = "score_staging"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    flagged: Mapped[bool] = mapped_column(Boolean, nullable=False)

    __table_args__ = ({"sqlite_with_rowid": False},)


class JobLock(Base):
    """A named lock held by one batch job at a time (expires so a killed job cannot wedge it)."""

    __tablename__ = "job_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class ApiToken(Base):
    """A bearer token for ``graphrec serve``: a name, its scopes, and the SHA-256 hex digest of its
    secret (the secret itself is never stored; it is shown once, when the token is created).

    ``token_hash`` is unique so verifying a request is one indexed look-up; ``prefix`` (the
    secret's first characters) lets a person tell tokens apart in a listing; ``scopes`` is a
    comma-separated, sorted list. A token is active until ``revoked_at`` is set or ``expires_at``
    has passed; revoked tokens are kept so listings show what was revoked and when."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    scopes: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


metadata = Base.metadata
