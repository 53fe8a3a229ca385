"""``GraphStore``: the library API over the SQL graph store.

The store keeps the graph (users, profiles, friendships, blocks, labels, circles), hands out
consistent snapshots, records model runs and keeps generic scoring runs keyed by kind. It knows
no task: what a score means, which kind a recommender filters on, how a model is trained are
decided above it.

Public methods speak *external* ids (the ids users were imported with; ints are accepted and
turned into their decimal text). Every write runs in one transaction and bumps the store
revision when it changes something; every read that spans several queries (snapshots, stats,
exports, a user's profile) runs in one repeatable-read transaction.

SQL style: every statement the store builds is a SQLAlchemy Core expression over the tables of
:mod:`graphrec.store.schema` (this module, :mod:`~graphrec.store.scores`,
:mod:`~graphrec.store.locks`, :mod:`~graphrec.store.loader`, :mod:`~graphrec.store.exporters`,
the small reads of :mod:`~graphrec.store.snapshot` and the ordinary statements of
:mod:`~graphrec.store.bulk`). Raw SQL is kept deliberately, each where Core has no equivalent or
costs too much, and documented where it is:

* the id-list reads of the serving path (:meth:`GraphStore.mutual_friends_with`,
  :meth:`GraphStore.excluded_candidates`): text SQL that binds the whole id list as one
  ``json_each`` / ``unnest`` parameter, so the statement compiles once and SQLite's join order
  stays pinned (no portable Core form);
* the driver-level bulk paths, where SQLAlchemy row handling would cost more than the database
  work: ``executemany`` on the sqlite3 connection and ``COPY`` on PostgreSQL for users, pairs and
  scores (:mod:`~graphrec.store.bulk`, :func:`graphrec.store.scores._insert_scores`), and the
  snapshot's user and friendship reads (:mod:`~graphrec.store.snapshot`);
* backend-specific statements with no Core form: ``LOCK TABLE``, catalog reads and the
  index/constraint DDL replayed from them, the sequence reset (:mod:`~graphrec.store.bulk`),
  SQLite ``PRAGMA`` / ``BEGIN`` (:mod:`~graphrec.store.engine`), and Alembic's
  ``alembic_version`` read (:mod:`~graphrec.store.migrate`).

Scoring runs (one batch of per-user scores per kind and run date) are read and written through
the methods under "scoring runs" below; no caller outside the store opens a transaction for them.

Example::

    from graphrec import GraphStore
    store = GraphStore()                      # GRAPHREC_DATABASE_URL or ./graphrec.db
    store.initialize()                        # alembic upgrade head
    store.import_ego_facebook()
    store.mutual_friends("0", "1")
    data = store.snapshot().to_pyg()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, literal_column, or_, select, text, union_all, update
from sqlalchemy.sql.expression import ColumnElement, Subquery

from graphrec.config import Settings
from graphrec.errors import ConflictError, InputError, NotFoundError, StoreStateError
from graphrec.store import bulk, migrate
from graphrec.store import scores as scoring
from graphrec.store.engine import SQLITE_BEGIN_OPTION, get_engine
from graphrec.store.report import ImportReport
from graphrec.store.schema import (
    Base,
    Block,
    Circle,
    CircleMember,
    FeatureColumn,
    Friendship,
    Label,
    ModelRun,
    Score,
    StoreRevision,
    User,
    utcnow,
)
from graphrec.store.scores import NewScoringRun, RunInfo, StagedRun, TopScore, UserScore
from graphrec.store.snapshot import Snapshot, read_snapshot
from graphrec.store.vectors import decode_vector, encode_vector, stored_length

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.importers import BatchExtension, EdgeBatch, LabelBatch, UserBatch
    from graphrec.store.stream import GraphStream

log = logging.getLogger(__name__)

UserRef = str | int

#: What :meth:`GraphStore.export` writes (see :mod:`graphrec.store.exporters` for the formats).
EXPORTS = ("users", "friendships", "labels")

# -- statements used per request (built once; SQLAlchemy caches their compiled form) --------------
_REVISION = select(StoreRevision.revision).where(StoreRevision.id == 1)


def _friends_of(u: ColumnElement[Any]) -> Subquery:
    """Subquery ``f(n)``: the internal ids of the friends of internal id ``u`` (a value or a bind
    parameter), every friendship read from the side it is stored on."""
    return union_all(
        select(Friendship.user_hi.label("n")).where(Friendship.user_lo == u),
        select(Friendship.user_lo.label("n")).where(Friendship.user_hi == u),
    ).subquery("f")


_FRIENDS = _friends_of(bindparam("u"))
#: external ids of the active friends of internal id ``:u``
_ACTIVE_FRIENDS = select(User.external_id).join(_FRIENDS, User.id == _FRIENDS.c.n).where(User.deleted_at.is_(None))
_BLOCKED = union_all(
    select(Block.blocked_id.label("n")).where(Block.blocker_id == bindparam("u")),
    select(Block.blocker_id.label("n")).where(Block.blocked_id == bindparam("u")),
).subquery("b")
#: external ids of the users ``:u`` blocked or was blocked by (deleted users too)
_BLOCKED_EITHER_WAY = select(User.external_id).join(_BLOCKED, User.id == _BLOCKED.c.n).distinct()
_RELATIONS = union_all(
    select(literal_column("'f'").label("kind"), Friendship.user_hi.label("n")).where(Friendship.user_lo == bindparam("u")),
    select(literal_column("'f'"), Friendship.user_lo).where(Friendship.user_hi == bindparam("u")),
    select(literal_column("'b'"), Block.blocked_id).where(Block.blocker_id == bindparam("u")),
    select(literal_column("'b'"), Block.blocker_id).where(Block.blocked_id == bindparam("u")),
).subquery("r")
#: internal id and deletion time of external id ``:e``
_USER_BY_EXT = select(User.id, User.deleted_at).where(User.external_id == bindparam("e"))
#: the whole row of internal id ``:u``
_USER_ROW = select(User.__table__).where(User.id == bindparam("u"))
#: (source, label) of internal id ``:u``, by source
_LABELS_OF = select(Label.source, Label.label).where(Label.user_id == bindparam("u")).order_by(Label.source)
#: internal id, feature blob and deletion time of external id ``:e``
_SERVING_USER = select(User.id, User.features, User.deleted_at).where(User.external_id == bindparam("e"))
#: (kind, external id) of the live friends ('f') and the blocked either way ('b', deleted too) of ``:u``
_SERVING_RELATIONS = (
    select(_RELATIONS.c.kind, User.external_id)
    .join(_RELATIONS, User.id == _RELATIONS.c.n)
    .where(or_(User.deleted_at.is_(None), _RELATIONS.c.kind == "b"))
)

#: The friends of the user whose internal id is ``{u}`` (an SQL expression), as column ``n``: the
#: text form used by the id-list reads below.
_FRIENDS_OF = (
    "SELECT user_hi AS n FROM friendships WHERE user_lo = {u} "
    "UNION ALL SELECT user_lo AS n FROM friendships WHERE user_hi = {u}"
)


def _insert_new(conn: Connection, table: Any, values: Mapping[str, Any], *, update: Mapping[str, Any] | None = None,
                conflict: Sequence[str] = ()) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING`` (or ``DO UPDATE SET update`` on the ``conflict``
    columns): True when a row was inserted. Two writers adding the same friendship, block, label
    or user at the same moment (two HTTP requests, on PostgreSQL) both succeed, instead of one
    failing on the unique key; SQLite serialises writers anyway."""
    from sqlalchemy.dialects import postgresql, sqlite

    stmt = (postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)).values(**values)
    if update:
        done = stmt.on_conflict_do_update(index_elements=list(conflict), set_=dict(update))
    else:
        done = stmt.on_conflict_do_nothing()
    if conn.dialect.name == "postgresql":  # RETURNING says whether a row was written (psycopg's rowcount does not, here)
        return conn.execute(done.returning(literal_column("1"))).first() is not None
    return bool(conn.execute(done).rowcount)  # SQLite's changes(): exact, and no RETURNING needed (SQLite < 3.35)


def _merged_attributes(current: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any] | None:
    """``current`` with ``changes`` applied (a None value removes the key); None when empty."""
    merged = dict(current or {})
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged or None


def id_sort_key(external_id: str) -> tuple[int, int, str]:
    """Sort key for external ids: integer ids numerically (``48`` before ``119``), then any other
    text ids in text order."""
    text_value = str(external_id)
    body = text_value[1:] if text_value[:1] in "+-" else text_value
    if body.isdigit() and body.isascii():
        return (0, int(text_value), "")
    return (1, 0, text_value)


def sorted_ids(ids: Iterable[str]) -> list[str]:
    """``ids`` sorted by :func:`id_sort_key`: numerically where they are integers."""
    return sorted(ids, key=id_sort_key)


def _ext(user: UserRef) -> str:
    if isinstance(user, bool) or not isinstance(user, (str, int, np.integer)):
        raise InputError(f"user id must be text or an integer, got {type(user).__name__}")
    value = str(user).strip()
    if not value:
        raise InputError("empty user id")
    if "\x00" in value:  # no stored id has one (imports reject NUL bytes); PostgreSQL cannot even compare it
        raise InputError(f"user id {value.replace(chr(0), '?')!r} contains a NUL byte")
    return value


@dataclass(frozen=True)
class UserRecord:
    """A user as the library returns it."""

    external_id: str
    attributes: dict[str, Any]
    features: dict[str, float]
    is_synthetic: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class StoreStats:
    """Summary figures of the store (active users only unless stated)."""

    revision: int
    users: int
    synthetic_users: int
    deleted_users: int
    friendships: int
    blocks: int
    labels: dict[str, int]
    circles: int
    feature_columns: int
    density: float
    mean_degree: float
    isolated_users: int
    components: int
    largest_component: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ModelRunRecord:
    """A completed training run as ``model_runs`` records it (reproducibility: what was trained,
    with which hyper-parameters and seed, on which data version, what it measured, where the
    artifact lies). :meth:`GraphStore.record_model_run` writes one on its own;
    :meth:`GraphStore.load_synthetic` writes one in the transaction of the users it describes."""

    kind: str
    version: str
    seed: int | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    data_revision: int
    data_fingerprint: str
    artifact_path: str
    started_at: dt.datetime | None = None


@dataclass(frozen=True)
class SchemaStatus:
    """Where the database schema stands: its revision and the one this code expects."""

    database: str
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def as_dict(self) -> dict[str, Any]:
        """``{database, current, head, up_to_date}`` (what ``graphrec db current`` prints)."""
        return {"database": self.database, "current": self.current, "head": self.head, "up_to_date": self.up_to_date}


@dataclass(frozen=True)
class DowngradePlan:
    """What a schema downgrade would do, found by running it in a transaction that is rolled
    back: the revisions (before, after; None is an empty schema) and the tables it would drop
    with their row counts (``alembic_version`` left out)."""

    database: str
    before: str | None
    after: str | None
    dropped: dict[str, int]

    @property
    def rows(self) -> int:
        """Rows in the tables the downgrade would drop."""
        return sum(self.dropped.values())

    def describe(self) -> str:
        """One line: ``downgrade of DB from 0001 to base drops 12 tables (users: 4,039 rows, ...)``."""
        what = (f"drops {len(self.dropped)} table(s) holding {self.rows:,} row(s) ("
                + ", ".join(f"{t}: {n:,}" for t, n in self.dropped.items()) + ")") if self.dropped else "drops no table"
        return f"downgrade of {self.database} from {self.before or 'empty'} to {self.after or 'empty'} {what}"

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.database, "before": self.before, "after": self.after, "dropped": dict(self.dropped),
                "rows": self.rows}


@dataclass(frozen=True)
class ExportResult:
    """What :meth:`GraphStore.export` wrote."""

    what: str
    rows: int
    path: Path
    #: the users export's id column when it is not ``id`` (a column of the store is named ``id``)
    id_column: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """``{exported, rows, output}`` (what ``graphrec export`` prints), with ``id_column`` and
        a hint when a users export had to name its id column other than ``id``."""
        out: dict[str, Any] = {"exported": self.what, "rows": self.rows, "output": str(self.path)}
        if self.id_column is not None:
            out["id_column"] = self.id_column
            out["hint"] = f"read it back with: graphrec import users {self.path} --id-column {self.id_column}"
        return out


class GraphStore:
    """The SQL graph store (SQLite or PostgreSQL)."""

    def __init__(self, database_url: str | None = None, *, home: str | Path | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.resolve(database_url, home)
        self.engine: Engine = get_engine(self.settings.database_url)
        self._schema_ok = False
        self._names_cache: tuple[int, list[str]] | None = None

    def __repr__(self) -> str:
        return f"GraphStore({self.engine.url.render_as_string()!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- schema ------------------------------------------------------------------------------
    def initialize(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Bring the schema to ``revision`` (default: the newest), in one transaction. Returns
        the revisions (before, after); None stands for an empty database."""
        result = migrate.upgrade(self.engine, revision)
        self._schema_ok = False
        log.info("schema of %s: %s -> %s", self, result[0] or "empty", result[1])
        return result

    def downgrade_plan(self, revision: str) -> DowngradePlan:
        """What :meth:`downgrade` to ``revision`` would remove, without removing it: the
        downgrade runs in a transaction that is rolled back (both backends have transactional
        DDL), and the tables it dropped are reported with their row counts."""
        from sqlalchemy import inspect as sa_inspect
        from sqlalchemy import table as sa_table

        from alembic import command

        self._require_database_file()
        with self.engine.connect() as conn:
            trans = conn.begin()
            try:
                before = migrate.current_revision(conn)
                # a partitioned table's partitions go with it: only the tables themselves are listed
                parts = set(conn.execute(text(
                    "SELECT relname FROM pg_class WHERE relispartition AND relkind = 'r' AND relnamespace = current_schema()::regnamespace"
                )).scalars()) if self.dialect == "postgresql" else set()
                tables = [t for t in sa_inspect(conn).get_table_names() if t != "alembic_version" and t not in parts]
                counts = {t: int(conn.execute(select(func.count()).select_from(sa_table(t))).scalar_one()) for t in tables}
                command.downgrade(migrate.alembic_config(conn), revision)
                after = migrate.current_revision(conn)
                left = set(sa_inspect(conn).get_table_names()) - parts
            finally:
                trans.rollback()
        dropped = {t: n for t, n in counts.items() if t not in left}
        return DowngradePlan(self.engine.url.render_as_string(), before, after, dropped)

    def downgrade(self, revision: str, *, confirm: Callable[[DowngradePlan], bool] | None = None) -> tuple[str | None, str | None]:
        """Take the schema down to ``revision`` in one transaction (``base`` drops every graphrec
        table and its data). Returns the revisions (before, after); None stands for empty.

        Destructive, so callers should confirm: with ``confirm``, the :class:`DowngradePlan`
        (tables and row counts that would go) is computed first and handed to it; unless it
        returns True nothing is changed and an :class:`~graphrec.errors.InputError` says so."""
        if confirm is not None:
            plan = self.downgrade_plan(revision)
            if not confirm(plan):
                raise InputError(f"schema downgrade to {revision!r} not confirmed: nothing was changed")
        else:
            self._require_database_file()
        result = migrate.downgrade(self.engine, revision)
        self._schema_ok = False
        log.info("schema of %s: %s -> %s", self, result[0] or "empty", result[1] or "empty")
        return result

    def schema_status(self) -> SchemaStatus:
        """The schema revision of the database beside the one this code expects (no check:
        works on an empty or outdated database)."""
        if self.missing_database_file() is not None:  # do not create the file to look inside it
            return SchemaStatus(self.engine.url.render_as_string(), None, migrate.SCHEMA_HEAD)
        current, head = migrate.schema_status(self.engine)
        return SchemaStatus(self.engine.url.render_as_string(), current, head)

    def initialize_if_empty(self) -> bool:
        """Create the schema when the database is empty; True if it did."""
        if migrate.is_empty(self.engine):
            self.initialize()
            return True
        return False

    def check_schema(self) -> None:
        """Raise :class:`StoreStateError` unless the schema is at the code's head revision.

        A SQLite file that does not exist is reported as such, and is not created: connecting
        would create an empty file for a mistyped path, so reads never do."""
        if not self._schema_ok:
            self._require_database_file()
            migrate.require_current(self.engine)
            self._schema_ok = True

    def missing_database_file(self) -> Path | None:
        """The SQLite file this store names when it does not exist yet (None for PostgreSQL,
        in-memory SQLite and an existing file). Only schema changes and imports create it."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        if url.query.get("uri") or url.database.startswith("file:"):
            return None  # SQLite URI filenames (mode=memory, mode=ro, ...): leave them to SQLite
        path = Path(url.database).expanduser()
        return None if path.exists() else path.resolve()

    def _require_database_file(self) -> None:
        missing = self.missing_database_file()
        if missing is not None:
            raise StoreStateError(
                f"no database at {missing}: not initialised, nothing created (run `graphrec db upgrade` or a `graphrec import` command to create it, "
                "or point --database-url / GRAPHREC_DATABASE_URL at an existing one)"
            )

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
        self.check_schema()
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction with a consistent view (repeatable read on PostgreSQL)."""
        self.check_schema()
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # -- users -------------------------------------------------------------------------------
    def _user_id(self, conn: Connection, user: UserRef, *, include_deleted: bool = False) -> int:
        ext = _ext(user)
        row = conn.execute(_USER_BY_EXT, {"e": ext}).first()
        if row is None or (row.deleted_at is not None and not include_deleted):
            raise NotFoundError(f"unknown user {ext!r}")
        return int(row.id)

    def add_user(
        self,
        user: UserRef,
        *,
        attributes: Mapping[str, Any] | None = None,
        features: Mapping[str, float] | None = None,
        is_synthetic: bool = False,
        allow_new_columns: bool = False,
    ) -> None:
        """Create a user; ``features`` maps feature names to numbers.

        A name the store has no column for would widen every user's feature vector (and make
        trained models refuse to load), so it is an :class:`~graphrec.errors.InputError` naming
        the new column(s) unless ``allow_new_columns`` (or the store has no feature column yet)."""
        ext = _ext(user)
        with self.write() as conn:
            if conn.execute(select(User.id).where(User.external_id == ext)).first() is not None:
                raise ConflictError(f"user {ext!r} already exists")
            blob = self._encode_features(conn, features, allow_new=allow_new_columns)
            now = utcnow()
            conn.execute(
                insert(User).values(
                    external_id=ext,
                    attributes=dict(attributes) if attributes else None,
                    features=blob,
                    is_synthetic=bool(is_synthetic),
                    created_at=now,
                    updated_at=now,
                )
            )
            bulk.bump_revision(conn)

    def update_user(
        self,
        user: UserRef,
        *,
        attributes: Mapping[str, Any] | None = None,
        features: Mapping[str, float] | None = None,
        allow_new_columns: bool = False,
    ) -> None:
        """Merge new attribute values (``None`` removes a key) and feature values into a user
        (new feature columns need ``allow_new_columns``, as in :meth:`add_user`)."""
        with self.write() as conn:
            uid = self._user_id(conn, user)
            row = conn.execute(select(User.attributes, User.features).where(User.id == uid)).one()
            values: dict[str, Any] = {"updated_at": utcnow()}
            if attributes:
                values["attributes"] = _merged_attributes(row.attributes, attributes)
            if features:
                values["features"] = self._encode_features(conn, features, base=row.features, allow_new=allow_new_columns)
            conn.execute(update(User).where(User.id == uid).values(**values))
            bulk.bump_revision(conn)

    def put_user(
        self,
        user: UserRef,
        *,
        attributes: Mapping[str, Any] | None = None,
        features: Mapping[str, float] | None = None,
        is_synthetic: bool | None = None,
        allow_new_columns: bool = False,
    ) -> bool:
        """Create ``user`` with these values, or merge them into the existing user (as
        :meth:`update_user`), in one transaction: idempotent, the same call twice leaves the same
        user. Returns True when the user was created. ``is_synthetic`` cannot change on an
        existing user (a :class:`~graphrec.errors.ConflictError`: synthetic users are never shown
        to real ones, so the flag is fixed at creation); a soft-deleted user is a conflict too
        (its id is kept for audit and is not reused)."""
        ext = _ext(user)
        with self.write() as conn:
            row = conn.execute(select(User.id, User.attributes, User.features, User.is_synthetic, User.deleted_at)
                               .where(User.external_id == ext)).first()
            now = utcnow()
            if row is None:
                blob = self._encode_features(conn, features, allow_new=allow_new_columns)
                attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
                if _insert_new(conn, User, {"external_id": ext, "attributes": attrs or None, "features": blob,
                                            "is_synthetic": bool(is_synthetic), "created_at": now, "updated_at": now}):
                    bulk.bump_revision(conn)
                    return True
                # a concurrent writer created it a moment ago: merge into it like any existing user
                row = conn.execute(select(User.id, User.attributes, User.features, User.is_synthetic, User.deleted_at)
                                   .where(User.external_id == ext)).one()
            if row.deleted_at is not None:
                raise ConflictError(f"user {ext!r} was deleted: its id is not reused")
            if is_synthetic is not None and bool(is_synthetic) != bool(row.is_synthetic):
                raise ConflictError(f"user {ext!r} is {'' if row.is_synthetic else 'not '}synthetic: the flag cannot change")
            values: dict[str, Any] = {}
            if attributes:
                merged = _merged_attributes(row.attributes, attributes)
                if (merged or {}) != dict(row.attributes or {}):
                    values["attributes"] = merged
            if features:
                blob = self._encode_features(conn, features, base=row.features, allow_new=allow_new_columns)
                if blob != row.features:
                    values["features"] = blob
            if values:  # a repeated PUT changes nothing and does not bump the revision
                conn.execute(update(User).where(User.id == row.id).values(updated_at=now, **values))
                bulk.bump_revision(conn)
            return False

    def _encode_features(self, conn: Connection, features: Mapping[str, float] | None, base: bytes | None = None, *,
                         allow_new: bool = False) -> bytes | None:
        if not features:
            return base
        from graphrec.store import loader

        names = list(features)
        vals = np.asarray([features[n] for n in names], dtype=np.float64)
        if not np.isfinite(vals).all():
            bad = names[int(np.flatnonzero(~np.isfinite(vals))[0])]
            raise InputError(f"feature {bad!r} must be a finite number")
        as32 = vals.astype(np.float32)
        if not np.isfinite(as32).all():  # as the importers: a value that overflows float32 is refused, not stored as inf
            bad = names[int(np.flatnonzero(~np.isfinite(as32))[0])]
            raise InputError(f"feature {bad!r}: value {features[bad]!r} overflows float32")
        positions, dim, added = loader.ensure_feature_columns(conn, names, allow_new=allow_new)
        if added:  # a new column changes every profile's width: a new store revision, whatever the values
            bulk.bump_revision(conn)
        vec = decode_vector(base, dim)
        vec[positions] = vals.astype(np.float32)
        return encode_vector(vec)

    def get_user(self, user: UserRef) -> UserRecord:
        """A user's profile (deleted users too, with ``deleted_at`` set)."""
        with self.read() as conn:
            return self._user_record(conn, self._user_id(conn, user, include_deleted=True))

    def _feature_names(self, conn: Connection) -> list[str]:
        """The feature column names in position order, read again only when the store revision
        moved (a profile read by a server reads the same hundreds of names on every request)."""
        revision = int(conn.execute(_REVISION).scalar_one())
        cached = self._names_cache
        if cached is not None and cached[0] == revision:
            return cached[1]
        names = list(conn.execute(select(FeatureColumn.name).order_by(FeatureColumn.position)).scalars())
        self._names_cache = (revision, names)
        return names

    def _user_record(self, conn: Connection, uid: int) -> UserRecord:
        row = conn.execute(_USER_ROW, {"u": uid}).one()
        names = self._feature_names(conn)
        vec = decode_vector(row.features, len(names))
        return UserRecord(
            external_id=row.external_id,
            attributes=dict(row.attributes or {}),
            features={n: float(v) for n, v in zip(names, vec.tolist()) if v != 0.0},
            is_synthetic=bool(row.is_synthetic),
            created_at=row.created_at,
            updated_at=row.updated_at,
            deleted_at=row.deleted_at,
        )

    def user_profile(self, user: UserRef) -> dict[str, Any]:
        """What ``graphrec user show`` prints, read in one transaction: ``{id, is_synthetic,
        deleted, degree (active friends; 0 for a deleted user), labels (label by source),
        attributes, features (non-zero values by column name), feature_columns (how many the
        store has), created_at, updated_at (ISO 8601)}``. Deleted users are shown too; an
        unknown user is a :class:`~graphrec.errors.NotFoundError`."""
        with self.read() as conn:
            uid = self._user_id(conn, user, include_deleted=True)
            rec = self._user_record(conn, uid)
            degree = 0 if rec.is_deleted else len(self._neighbours(conn, uid))
            labels = {src: lab for src, lab in conn.execute(_LABELS_OF, {"u": uid})}
            n_columns = len(self._feature_names(conn))
        return {
            "id": rec.external_id,
            "is_synthetic": rec.is_synthetic,
            "deleted": rec.is_deleted,
            "degree": degree,
            "labels": labels,
            "attributes": rec.attributes,
            "features": rec.features,
            "feature_columns": n_columns,
            "created_at": rec.created_at.isoformat(),
            "updated_at": rec.updated_at.isoformat(),
        }

    def has_user(self, user: UserRef) -> bool:
        """True for an active (not deleted) user."""
        with self.read() as conn:
            try:
                self._user_id(conn, user)
                return True
            except NotFoundError:
                return False

    def remove_user(self, user: UserRef, *, hard: bool = False) -> None:
        """Soft-delete a user (kept for audit, hidden everywhere), or delete it with its edges."""
        with self.write() as conn:
            uid = self._user_id(conn, user, include_deleted=hard)
            if hard:
                conn.execute(delete(User).where(User.id == uid))
            else:
                now = utcnow()
                conn.execute(update(User).where(User.id == uid).values(deleted_at=now, updated_at=now))
            bulk.bump_revision(conn)

    def count_users(self, *, include_deleted: bool = False) -> int:
        """Number of users (active ones unless ``include_deleted``)."""
        with self.read() as conn:
            q = select(func.count()).select_from(User)
            if not include_deleted:
                q = q.where(User.deleted_at.is_(None))
            return int(conn.execute(q).scalar_one())

    # -- friendships -------------------------------------------------------------------------
    def add_friendship(self, a: UserRef, b: UserRef) -> bool:
        """Befriend two users; False if they already were friends."""
        with self.write() as conn:
            ua, ub = self._user_id(conn, a), self._user_id(conn, b)
            if ua == ub:
                raise InputError(f"self-loop: user {_ext(a)!r} cannot befriend itself")
            lo, hi = min(ua, ub), max(ua, ub)
            if not _insert_new(conn, Friendship, {"user_lo": lo, "user_hi": hi}):
                return False  # they already were friends (or a concurrent writer just made them)
            bulk.bump_revision(conn)
            return True

    def add_friendships(self, pairs: Iterable[tuple[UserRef, UserRef]], *, create_users: bool = False) -> ImportReport:
        """Bulk-add friendships (validated like an edge file; one transaction)."""
        import pandas as pd

        from graphrec.store.importers import validate_pairs

        pair_list = [(_ext(a), _ext(b)) for a, b in pairs]
        codes, uniques = pd.factorize(np.asarray([x for p in pair_list for x in p], dtype=object))
        codes = codes.reshape(-1, 2) if pair_list else np.empty((0, 2), dtype=np.int64)
        batch = validate_pairs(
            Path("<pairs>"),
            [str(u) for u in uniques],
            codes[:, 0],
            codes[:, 1],
            np.arange(len(pair_list)),
            lambda k: k + 1,
            skip_invalid=False,
            skipped={},
            rows_read=len(pair_list),
        )
        return self.load_edges(batch, create_users=create_users, kind="friendships")

    def remove_friendship(self, a: UserRef, b: UserRef) -> bool:
        """Unfriend; False if they were not friends."""
        with self.write() as conn:
            ua, ub = self._user_id(conn, a, include_deleted=True), self._user_id(conn, b, include_deleted=True)
            lo, hi = min(ua, ub), max(ua, ub)
            res = conn.execute(delete(Friendship).where(Friendship.user_lo == lo, Friendship.user_hi == hi))
            if res.rowcount:
                bulk.bump_revision(conn)
            return bool(res.rowcount)

    def are_friends(self, a: UserRef, b: UserRef) -> bool:
        """Whether two active users are friends."""
        with self.read() as conn:
            ua, ub = self._user_id(conn, a), self._user_id(conn, b)
            lo, hi = min(ua, ub), max(ua, ub)
            return conn.execute(
                select(Friendship.user_lo).where(Friendship.user_lo == lo, Friendship.user_hi == hi)
            ).first() is not None

    def neighbours(self, user: UserRef) -> list[str]:
        """External ids of the user's active friends, sorted (numerically for integer ids)."""
        with self.read() as conn:
            return self._neighbours(conn, self._user_id(conn, user))

    @staticmethod
    def _neighbours(conn: Connection, uid: int) -> list[str]:
        return sorted_ids(conn.execute(_ACTIVE_FRIENDS, {"u": uid}).scalars())

    def degree(self, user: UserRef) -> int:
        """Number of active friends."""
        return len(self.neighbours(user))

    def mutual_friends(self, a: UserRef, b: UserRef) -> list[str]:
        """External ids of the active users who are friends of both, sorted (numerically for
        integer ids)."""
        return sorted_ids(set(self.neighbours(a)) & set(self.neighbours(b)))

    # -- blocks ------------------------------------------------------------------------------
    def block(self, blocker: UserRef, blocked: UserRef) -> bool:
        """Record that ``blocker`` blocked ``blocked``; False if already recorded."""
        with self.write() as conn:
            ua, ub = self._user_id(conn, blocker), self._user_id(conn, blocked)
            if ua == ub:
                raise InputError(f"user {_ext(blocker)!r} cannot block itself")
            if not _insert_new(conn, Block, {"blocker_id": ua, "blocked_id": ub, "created_at": utcnow()}):
                return False
            bulk.bump_revision(conn)
            return True

    def unblock(self, blocker: UserRef, blocked: UserRef) -> bool:
        """Remove a block; False if there was none."""
        with self.write() as conn:
            ua, ub = self._user_id(conn, blocker, include_deleted=True), self._user_id(conn, blocked, include_deleted=True)
            res = conn.execute(delete(Block).where(Block.blocker_id == ua, Block.blocked_id == ub))
            if res.rowcount:
                bulk.bump_revision(conn)
            return bool(res.rowcount)

    def blocked_either_way(self, user: UserRef) -> list[str]:
        """Users that ``user`` blocked or that blocked ``user``: never recommend them to each other."""
        with self.read() as conn:
            uid = self._user_id(conn, user)
            return sorted_ids(conn.execute(_BLOCKED_EITHER_WAY, {"u": uid}).scalars())

    # -- labels ------------------------------------------------------------------------------
    def set_label(self, user: UserRef, label: str, *, source: str = "manual") -> None:
        """Set the user's label from ``source`` (one current label per user and source)."""
        label = str(label).strip()
        if not label or len(label) > 64:
            raise InputError("label must be 1 to 64 characters")
        with self.write() as conn:
            uid = self._user_id(conn, user)
            now = utcnow()
            _insert_new(conn, Label, {"user_id": uid, "source": source, "label": label, "created_at": now, "updated_at": now},
                        update={"label": label, "updated_at": now}, conflict=("user_id", "source"))
            bulk.bump_revision(conn)

    def labels(self, *, source: str | None = None) -> dict[str, str]:
        """Current label per user (the most recent across sources unless ``source`` is given)."""
        with self.read() as conn:
            q = select(User.external_id, Label.label).join(Label, Label.user_id == User.id).where(User.deleted_at.is_(None))
            if source is not None:
                q = q.where(Label.source == source)
            q = q.order_by(Label.updated_at, Label.source)
            return {ext: lab for ext, lab in conn.execute(q)}

    # -- bulk import -------------------------------------------------------------------------
    def _run_import(self, kind: str, source: str, body: Callable[[Connection, ImportReport], None]) -> ImportReport:
        """Run ``body`` in one write transaction and bump the revision if it changed anything.
        Imports run one at a time (:func:`graphrec.store.locks.serialise_imports`), so concurrent
        imports with overlapping new users do not fail on PostgreSQL."""
        from graphrec.store import locks

        report = ImportReport(kind=kind, source=source)
        start = time.perf_counter()
        with self.write() as conn:
            locks.serialise_imports(conn)
            body(conn, report)
            if report.changed:
                report.revision = bulk.bump_revision(conn)
            else:
                report.revision = int(conn.execute(_REVISION).scalar_one())
        report.seconds = round(time.perf_counter() - start, 3)
        log.info("%s import from %s: %s", kind, source, report.as_dict())
        return report

    def load_edges(self, batch: EdgeBatch, *, create_users: bool = True, kind: str = "edges") -> ImportReport:
        """Write a validated edge batch in one transaction."""
        from graphrec.progress import progress_bar
        from graphrec.store import loader

        def body(conn: Connection, report: ImportReport) -> None:
            report.rows_read = batch.rows_read
            report.skipped = dict(batch.skipped)
            with progress_bar(total=int(batch.src.size), desc="friendships", unit="edge") as bar:
                loader.write_edges(conn, batch, report, create_users=create_users, progress=bar.update)

        return self._run_import(kind, batch.source, body)

    def import_edges(self, path: str | Path, *, create_users: bool = True, **options: Any) -> ImportReport:
        """Import an edge file (see :func:`graphrec.store.importers.read_edges` for options)."""
        from graphrec.store.importers import read_edges

        return self.load_edges(read_edges(path, **options), create_users=create_users)

    def import_blocks(self, path: str | Path, **options: Any) -> ImportReport:
        """Import directed blocks (``blocker blocked`` per row, same formats as edges): ``5 2``
        records that 5 blocked 2; ``3 4`` and ``4 3`` are two blocks, not a duplicate."""
        from graphrec.store import loader
        from graphrec.store.importers import read_edges

        batch = read_edges(path, directed=True, **options)

        def body(conn: Connection, report: ImportReport) -> None:
            report.rows_read = batch.rows_read
            report.skipped = dict(batch.skipped)
            loader.write_blocks(conn, batch, report)

        return self._run_import("blocks", batch.source, body)

    def load_users(self, batch: UserBatch, *, allow_new_columns: bool = False,
                   allow_synthetic_change: bool = False) -> ImportReport:
        """Write a validated user batch in one transaction. Feature columns the store lacks are
        an :class:`~graphrec.errors.InputError` (nothing written) unless ``allow_new_columns`` or
        the store has no feature column yet: a new column widens every user's vector.

        Marking an existing real user synthetic (``is_synthetic`` true) is refused unless
        ``allow_synthetic_change``: ``synth purge`` hard-deletes synthetic users."""
        from graphrec.progress import progress_bar
        from graphrec.store import loader

        def body(conn: Connection, report: ImportReport) -> None:
            report.rows_read = len(batch.external_ids)
            with progress_bar(total=len(batch.external_ids), desc="users", unit="user") as bar:
                loader.write_users(conn, batch, report, progress=bar.update, allow_new_columns=allow_new_columns,
                                   allow_synthetic_change=allow_synthetic_change)

        return self._run_import("users", batch.source, body)

    def import_users(self, path: str | Path, *, allow_new_columns: bool = False, allow_synthetic_change: bool = False,
                     **options: Any) -> ImportReport:
        """Import a users CSV (see :func:`graphrec.store.importers.read_users`; new feature
        columns need ``allow_new_columns`` and turning real users synthetic needs
        ``allow_synthetic_change``, as in :meth:`load_users`)."""
        from graphrec.store.importers import read_users

        return self.load_users(read_users(path, **options), allow_new_columns=allow_new_columns,
                               allow_synthetic_change=allow_synthetic_change)

    def import_labels(self, path: str | Path, **options: Any) -> ImportReport:
        """Import a labels CSV (see :func:`graphrec.store.importers.read_labels`)."""
        from graphrec.store.importers import read_labels

        return self.load_labels(read_labels(path, **options))

    def load_labels(self, batch: LabelBatch) -> ImportReport:
        """Upsert an already validated :class:`~graphrec.store.importers.LabelBatch` in one transaction."""
        from graphrec.store import loader

        def body(conn: Connection, report: ImportReport) -> None:
            report.rows_read = len(batch.external_ids)
            loader.write_labels(conn, batch, report)

        return self._run_import("labels", batch.source, body)

    def import_ego_facebook(self, path: str | Path | None = None, *, allow_new_columns: bool = False,
                            extend: Callable[[UserBatch, EdgeBatch], BatchExtension] | None = None) -> ImportReport:
        """Import SNAP ego-Facebook (bundled copy unless ``path`` names a folder of SNAP files):
        users with their 1,406 binary features, friendships and circles, in one transaction.

        ``extend`` receives the dataset's validated users and friendships and returns more rows
        (:class:`~graphrec.store.importers.BatchExtension`) written in the same transaction,
        after the dataset: either everything lands or nothing does. ``allow_new_columns`` as in
        :meth:`load_users` (needed when the store already has other feature columns)."""
        from graphrec.datasets import load_ego_facebook
        from graphrec.store import loader
        from graphrec.store.importers import EdgeBatch, UserBatch

        data = load_ego_facebook(path)
        ids = [str(u) for u in data.user_ids.tolist()]
        users = UserBatch(
            source=str(path or "ego-facebook (bundled)"),
            external_ids=ids,
            feature_names=data.feature_names,
            features=data.features,
            attributes=[{} for _ in ids],
            attribute_names=[],
            is_synthetic=None,
        )
        index = {u: i for i, u in enumerate(data.user_ids.tolist())}
        edges = EdgeBatch(
            source=users.source,
            ids=ids,
            src=np.array([index[u] for u in data.edges[:, 0].tolist()], dtype=np.int64),
            dst=np.array([index[v] for v in data.edges[:, 1].tolist()], dtype=np.int64),
            rows_read=int(data.edges.shape[0]),
        )
        circles = [(str(ego), name, [str(m) for m in members]) for ego, name, members in data.circles]
        extra = extend(users, edges) if extend is not None else None

        def body(conn: Connection, report: ImportReport) -> None:
            report.rows_read = len(ids) + int(data.edges.shape[0])
            loader.write_users(conn, users, report, allow_new_columns=allow_new_columns)
            loader.write_edges(conn, edges, report, create_users=False)
            loader.write_circles(conn, circles, report, source="ego-facebook")
            if extra is not None:
                loader.write_users(conn, extra.users, report, allow_new_columns=allow_new_columns)
                loader.write_edges(conn, extra.edges, report, create_users=False)
                if extra.labels is not None and extra.labels.external_ids:
                    loader.write_labels(conn, extra.labels, report)

        return self._run_import("ego-facebook", users.source, body)

    def load_synthetic(self, users: UserBatch, edges: EdgeBatch, labels: LabelBatch | None = None, *,
                       model_run: ModelRunRecord | None = None) -> ImportReport:
        """Write synthetic users (``users.is_synthetic`` must all be true), their friendships,
        optional labels and, with ``model_run``, the ``model_runs`` row of the generator run that
        produced them, in ONE transaction: either all of it lands or none of it."""
        from graphrec.store import loader

        if users.is_synthetic is None or not bool(np.all(users.is_synthetic)):
            raise ValueError("load_synthetic writes synthetic users only (is_synthetic must be true for every row)")

        def body(conn: Connection, report: ImportReport) -> None:
            report.rows_read = len(users.external_ids) + int(edges.src.size)
            existing = bulk.lookup_user_ids(conn, users.external_ids)
            if (existing >= 0).any():
                clash = users.external_ids[int(np.flatnonzero(existing >= 0)[0])]
                raise InputError(f"synthetic user id {clash!r} already exists in the store")
            loader.write_users(conn, users, report)
            loader.write_edges(conn, edges, report, create_users=False)
            if labels is not None and labels.external_ids:
                loader.write_labels(conn, labels, report)
            if model_run is not None:
                self._insert_model_run(conn, model_run)

        return self._run_import("synthetic", users.source, body)

    def purge_synthetic(self) -> dict[str, int]:
        """Delete every synthetic user with their friendships, blocks, labels, circle memberships
        and scores, in one transaction. Returns the counts removed
        (``friendships``, ``labels``, ``scores``, ``users``)."""
        synthetic = select(User.id).where(User.is_synthetic == bindparam("t")).scalar_subquery()
        p = {"t": True}
        counts: dict[str, int] = {}
        with self.write() as conn:
            counts["friendships"] = int(conn.execute(
                delete(Friendship).where(or_(Friendship.user_lo.in_(synthetic), Friendship.user_hi.in_(synthetic))), p).rowcount)
            conn.execute(delete(Block).where(or_(Block.blocker_id.in_(synthetic), Block.blocked_id.in_(synthetic))), p)
            counts["labels"] = int(conn.execute(delete(Label).where(Label.user_id.in_(synthetic)), p).rowcount)
            conn.execute(delete(CircleMember).where(CircleMember.user_id.in_(synthetic)), p)
            conn.execute(update(Circle).where(Circle.owner_id.in_(synthetic)).values(owner_id=None), p)
            counts["scores"] = int(conn.execute(delete(Score).where(Score.user_id.in_(synthetic)), p).rowcount)
            counts["users"] = int(conn.execute(delete(User).where(User.is_synthetic == bindparam("t")), p).rowcount)
            if counts["users"] or counts["friendships"]:
                bulk.bump_revision(conn)
        log.info("purged synthetic users: %s", counts)
        return counts

    # -- model runs and serving reads --------------------------------------------------------
    @overload
    def record_model_run(self, kind: ModelRunRecord, /) -> None: ...

    @overload
    def record_model_run(
        self,
        kind: str,
        version: str,
        *,
        seed: int | None,
        params: dict[str, Any],
        metrics: dict[str, Any],
        data_revision: int,
        data_fingerprint: str,
        artifact_path: str,
        started_at: dt.datetime | None = None,
    ) -> None: ...

    def record_model_run(
        self,
        kind: str | ModelRunRecord,
        version: str | None = None,
        *,
        seed: int | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        data_revision: int | None = None,
        data_fingerprint: str | None = None,
        artifact_path: str | None = None,
        started_at: dt.datetime | None = None,
    ) -> None:
        """Record a completed training run (reproducibility: params, seed, metrics, data version),
        given as a :class:`ModelRunRecord` or as its fields, in its own transaction."""
        if isinstance(kind, ModelRunRecord):
            record = kind
        else:
            if version is None or data_revision is None or data_fingerprint is None or artifact_path is None:
                raise TypeError("record_model_run needs version, data_revision, data_fingerprint and artifact_path")
            record = ModelRunRecord(kind, version, seed, dict(params or {}), dict(metrics or {}), data_revision, data_fingerprint,
                                    artifact_path, started_at)
        with self.write() as conn:
            self._insert_model_run(conn, record)

    @staticmethod
    def _insert_model_run(conn: Connection, record: ModelRunRecord) -> None:
        now = utcnow()
        conn.execute(
            insert(ModelRun).values(
                kind=record.kind,
                version=record.version,
                status="completed",
                seed=record.seed,
                params=record.params,
                metrics=record.metrics,
                data_revision=record.data_revision,
                data_fingerprint=record.data_fingerprint,
                artifact_path=record.artifact_path,
                started_at=record.started_at or now,
                finished_at=now,
            )
        )

    def model_run_id(self, kind: str, version: str) -> int | None:
        """Id of the ``model_runs`` row of a model version (None if it was not recorded here)."""
        with self.read() as conn:
            row = conn.execute(select(ModelRun.id).where(ModelRun.kind == kind, ModelRun.version == version)).first()
        return None if row is None else int(row[0])

    def serving_context(self, user: UserRef, *, feature_dim: int | None = None) -> dict[str, Any]:
        """What a recommendation request needs from the live store, in one read transaction:
        the user's live friends, the users blocked either way, the user's feature vector
        (``feature_dim`` wide, default: the store's current width) and the store revision."""
        ext = _ext(user)
        with self.read() as conn:
            uid, blob = self._serving_user(conn, ext)
            rows = conn.execute(_SERVING_RELATIONS, {"u": uid}).all()
            if feature_dim is None:
                feature_dim = int(conn.execute(select(func.count()).select_from(FeatureColumn)).scalar_one())
            revision = int(conn.execute(_REVISION).scalar_one())
        vec = decode_vector(blob, max(feature_dim, stored_length(blob)))[:feature_dim]
        friends = sorted({e for k, e in rows if k == "f"})
        blocked = sorted({e for k, e in rows if k == "b"})
        return {"friends": friends, "blocked": blocked, "features": vec, "revision": revision}

    def profile_vector(self, user: UserRef, *, feature_dim: int) -> tuple[np.ndarray, int]:
        """The user's feature vector ``feature_dim`` wide and the store revision, in one read
        transaction (what a similar-users request needs; :meth:`serving_context` also reads the
        friends and blocks). :class:`~graphrec.errors.NotFoundError` for an unknown or deleted user."""
        ext = _ext(user)
        with self.read() as conn:
            _, blob = self._serving_user(conn, ext)
            revision = int(conn.execute(_REVISION).scalar_one())
        return decode_vector(blob, max(feature_dim, stored_length(blob)))[:feature_dim], revision

    @staticmethod
    def _serving_user(conn: Connection, ext: str) -> tuple[int, bytes | None]:
        """(internal id, feature blob) of an active user; NotFoundError otherwise."""
        row = conn.execute(_SERVING_USER, {"e": ext}).first()
        if row is None or row[2] is not None:
            raise NotFoundError(f"unknown user {ext!r}")
        return int(row[0]), row[1]

    def _users_in_list(self, alias: str, external_ids: Sequence[str]) -> tuple[str, Any]:
        """FROM-clause joining the id list bound as ``:ids`` to ``users`` (aliased ``alias``), and
        the value to bind. One parameter for the whole list (a JSON array on SQLite, a text[] on
        PostgreSQL) keeps the statement text constant, so it compiles once and is cached; the id
        list drives the join (CROSS JOIN pins SQLite's join order to the unique index). This is
        why the two id-list reads are text SQL: Core has no portable table-valued list parameter
        that keeps SQLite's CROSS JOIN."""
        if self.dialect == "sqlite":
            return f"json_each(:ids) j CROSS JOIN users {alias} ON {alias}.external_id = j.value ", json.dumps(list(external_ids))
        return f"unnest(CAST(:ids AS text[])) AS j(value) JOIN users {alias} ON {alias}.external_id = j.value ", list(external_ids)

    def mutual_friends_with(self, user: UserRef, candidates: Sequence[str]) -> dict[str, list[str]]:
        """Live mutual friends of ``user`` and each of ``candidates`` (active, real users, sorted),
        in one query: what a suggestion's "N mutual friends" reason must show (sorted
        numerically for integer ids)."""
        if not candidates:
            return {}
        source, ids = self._users_in_list("c", candidates)
        sql = (
            "WITH me AS (SELECT id FROM users WHERE external_id = :e), "
            f"mine AS ({_FRIENDS_OF.format(u='(SELECT id FROM me)')}), "
            f"cand AS (SELECT c.id, c.external_id FROM {source}), "
            "theirs AS (SELECT cand.external_id AS c, f.user_hi AS n FROM cand JOIN friendships f ON f.user_lo = cand.id "
            "UNION ALL SELECT cand.external_id, f.user_lo FROM cand JOIN friendships f ON f.user_hi = cand.id) "
            "SELECT theirs.c, m.external_id FROM theirs JOIN mine ON mine.n = theirs.n "
            "JOIN users m ON m.id = theirs.n WHERE m.deleted_at IS NULL AND m.is_synthetic = :f"
        )
        out: dict[str, list[str]] = {c: [] for c in candidates}
        with self.read() as conn:
            for cand, mutual in conn.execute(text(sql), {"e": _ext(user), "ids": ids, "f": False}):
                out[cand].append(mutual)
        return {c: sorted_ids(v) for c, v in out.items()}

    def excluded_candidates(self, external_ids: Sequence[str], *, score_kind: str | None = None,
                            score_threshold: float | str = "flagged") -> set[str]:
        """Which of ``external_ids`` must never be recommended: unknown or deleted users, synthetic
        users, and, with ``score_kind``, the users the latest complete scoring run of that kind
        marks: with ``score_threshold="flagged"`` the users that run flagged (its model's
        threshold), with a number the users whose score is above it (one query)."""
        if not external_ids:
            return set()
        if isinstance(score_threshold, str) and score_threshold != "flagged":
            raise ValueError(f"score_threshold must be a number or 'flagged', not {score_threshold!r}")
        ids = list(external_ids)
        source, id_param = self._users_in_list("u", ids)
        params: dict[str, Any] = {"ids": id_param, "f": False}
        sql = "SELECT u.external_id FROM " + source
        if score_kind is not None:
            sql += (
                "LEFT JOIN scores s ON s.user_id = u.id AND s.run_id = (SELECT id FROM scoring_runs "
                "WHERE kind = :kind AND status = 'complete' ORDER BY run_date DESC, id DESC LIMIT 1) "
            )
            params["kind"] = score_kind
        sql += "WHERE u.deleted_at IS NULL AND u.is_synthetic = :f"
        if score_kind is not None and score_threshold == "flagged":
            sql += " AND (s.flagged IS NULL OR s.flagged = :f)"
        elif score_kind is not None:
            sql += " AND (s.score IS NULL OR s.score <= :t)"
            params["t"] = score_threshold
        with self.read() as conn:
            ok = {r[0] for r in conn.execute(text(sql), params)}
        return set(ids) - ok

    def users_changed_since(self, since: dt.datetime, *, feature_dim: int) -> tuple[list[str], np.ndarray, list[str]]:
        """Users created or updated after ``since`` (external ids and ``feature_dim``-wide
        features, real and active only) and users deleted or turned synthetic since then: what an
        incremental index update needs."""
        with self.read() as conn:
            rows = conn.execute(
                select(User.external_id, User.features, User.deleted_at, User.is_synthetic)
                .where(or_(User.updated_at > since, User.created_at > since, User.deleted_at > since))
                .order_by(User.id)
            ).all()
        live = [r for r in rows if r[2] is None and not r[3]]
        gone = [r[0] for r in rows if r[2] is not None or r[3]]
        feats = np.zeros((len(live), feature_dim), dtype=np.float32)
        for i, r in enumerate(live):
            vec = decode_vector(r[1], max(feature_dim, stored_length(r[1])))[:feature_dim]
            feats[i, : vec.size] = vec
        return [r[0] for r in live], feats, gone

    # -- scoring runs ------------------------------------------------------------------------
    # A scoring run is one batch of per-user scores of one kind (the scoring task's artifact
    # kind) for one run date. Readers see complete runs only (see graphrec.store.scores).
    def latest_run(self, kind: str) -> RunInfo | None:
        """The latest complete scoring run of ``kind`` (by run date, then id), or None."""
        with self.read() as conn:
            return scoring.latest_complete(conn, kind)

    def recent_runs(self, kind: str, limit: int = 30) -> list[RunInfo]:
        """The ``limit`` latest complete scoring runs of ``kind``, oldest first (how many users
        each flagged, at which threshold)."""
        with self.read() as conn:
            return scoring.recent_complete(conn, kind, limit)

    def run_for_date(self, kind: str, run_date: dt.date) -> RunInfo | None:
        """The scoring run of ``kind`` for ``run_date``, complete or not, or None."""
        with self.read() as conn:
            return scoring.run_for_date(conn, kind, run_date)

    def flagged_user_ids(self, run_id: int) -> np.ndarray:
        """Internal ids (``int64``, as in :attr:`Snapshot.user_ids`) of the users scoring run
        ``run_id`` flagged (empty for an unknown run)."""
        with self.read() as conn:
            return scoring.flagged_user_ids(conn, run_id)

    def top_scores(self, run_id: int, limit: int) -> list[TopScore]:
        """The ``limit`` highest scores of scoring run ``run_id``, highest first (ties by external
        id), each with the explanation the run recorded (None for users it did not explain)."""
        with self.read() as conn:
            return scoring.top_scores(conn, run_id, limit)

    @contextlib.contextmanager
    def _runs_read(self) -> Iterator[Connection]:
        """A read transaction that finds a run and then reads its scores: ``scores`` is pinned
        before the snapshot is taken (:func:`~graphrec.store.scores.pin_scores`), so a publish
        that drops the run's partition cannot pull its scores away mid-read."""
        with self.read() as conn:
            scoring.pin_scores(conn)
            yield conn

    def latest_top_scores(self, kind: str, limit: int) -> tuple[RunInfo, list[TopScore]] | None:
        """The latest complete run of ``kind`` and its ``limit`` highest scores (as
        :meth:`top_scores`), read in one transaction; None when there is no complete run."""
        with self._runs_read() as conn:
            run = scoring.latest_complete(conn, kind)
            return None if run is None else (run, scoring.top_scores(conn, run.id, limit))

    def latest_user_scores(self, user: UserRef, kinds: Sequence[str]) -> dict[str, tuple[RunInfo, TopScore | None] | None]:
        """For each of ``kinds``: the latest complete run and ``user``'s score in it (None when
        the run did not score the user, e.g. one created since), or None when there is no
        complete run of that kind; read in one transaction, so every kind is seen as of the
        same moment. :class:`~graphrec.errors.NotFoundError` for an unknown or deleted user."""
        with self._runs_read() as conn:
            uid = self._user_id(conn, user)
            out: dict[str, tuple[RunInfo, TopScore | None] | None] = {}
            for kind in kinds:
                run = scoring.latest_complete(conn, kind)
                out[kind] = None if run is None else (run, scoring.user_score(conn, run.id, uid))
            return out

    def iter_scores(self, run_id: int, *, batch: int = 100_000) -> Iterator[list[UserScore]]:
        """Every user's score in scoring run ``run_id`` (external id, score, is synthetic), in
        lists of ``batch``, by internal id; streamed from one read transaction that stays open
        while the iterator is consumed."""
        with self.read() as conn:
            yield from scoring.iter_scores(conn, run_id, batch)

    def export_scores(self, kind: str, path: str | Path) -> tuple[RunInfo, int] | None:
        """Write ``id,score,is_synthetic`` (scores as Python's shortest round-trip text, flags as
        ``true``/``false``) for every user of the latest complete run of ``kind`` to the CSV file
        ``path``, atomically, reading the run and its scores in one transaction. Returns the run
        and the number of rows, or None (nothing written) when there is no complete run."""
        with self._runs_read() as conn:
            run = scoring.latest_complete(conn, kind)
            if run is None:
                return None
            rows = scoring.write_scores_csv(conn, run.id, path)
        log.info("exported %d %s scores of run %d to %s", rows, kind, run.id, path)
        return run, rows

    def write_scoring_runs(self, runs: Sequence[NewScoringRun], *, lock: tuple[str, str] | None = None,
                           keep: int | None = None) -> list[RunInfo]:
        """Write ``runs`` (each complete, with all its scores) in ONE write transaction, so readers
        see all of them or none, and a writer killed half-way leaves the previous runs in place.

        ``lock`` = (job lock name, owner, as in :class:`~graphrec.store.locks.JobLease`): checked
        first in that transaction; :class:`~graphrec.errors.JobLockedError` (nothing written)
        when the lock was taken over. A run replaces an existing run of its kind and date only
        with ``replace`` (a complete one is a ``ValueError`` otherwise); ``keep`` bounds how many
        complete runs of each kind are kept (the oldest are deleted in the same transaction).
        Returns the written runs' rows, in order."""
        with self.write() as conn:
            infos = scoring.write_runs(conn, runs, lock=lock, keep=keep)
        for info in infos:
            log.info("scoring run %d written: %s of %s, %d users, %d flagged", info.id, info.kind, info.run_date, info.n_scored,
                     info.n_flagged)
        return infos

    # -- staged scoring runs (distributed scoring) ---------------------------------------------
    def stage_scores(self, token: str, kind: str, user_ids: np.ndarray, scores: np.ndarray, flagged: np.ndarray) -> int:
        """Stage one worker's share of a scoring run in its own short write transaction: the
        scores (internal ``user_ids``, aligned ``scores`` and ``flagged``) of run ``kind`` under
        ``token`` (one job's run), into ``score_staging``, where no reader looks. Many workers
        call this at once (PostgreSQL: concurrent ``COPY``; SQLite: writers queue on the busy
        timeout). A user staged twice under the same token and kind keeps the last score, so a
        retried worker is harmless; duplicate ids within one call are an
        :class:`~graphrec.errors.InputError`. Returns the number of rows staged."""
        with self.write() as conn:
            return scoring.stage(conn, token, kind, user_ids, scores, flagged)

    def publish_staged_runs(self, runs: Sequence[StagedRun], *, lock: tuple[str, str] | None = None,
                            keep: int | None = None) -> list[RunInfo]:
        """Publish staged ``runs`` in ONE write transaction, with the guarantees of
        :meth:`write_scoring_runs` (the ``lock`` checked first, ``replace`` and ``keep`` as
        there, all runs or none visible): each run's staged rows must be exactly its
        ``expected_users`` users (else :class:`~graphrec.errors.StoreStateError` and nothing
        changes); they move into ``scores`` (on PostgreSQL into the run's new partition) and
        leave staging; ``n_scored`` / ``n_flagged`` are counted from them. Returns the runs' rows."""
        with self.write() as conn:
            infos = scoring.publish(conn, runs, lock=lock, keep=keep)
        for info in infos:
            log.info("staged scoring run %d published: %s of %s, %d users, %d flagged", info.id, info.kind, info.run_date,
                     info.n_scored, info.n_flagged)
        return infos

    def discard_staged(self, token: str | None = None) -> int:
        """Delete staged scores: ``token``'s, or every token's (None) — what a job that took over
        a dead job's lock does first, since a killed driver leaves its workers' rows behind.
        Returns the number of rows deleted."""
        with self.write() as conn:
            n = scoring.discard(conn, token)
        if n:
            log.info("discarded %d staged score row(s)%s", n, "" if token is None else f" of {token}")
        return n

    # -- snapshot, stats ---------------------------------------------------------------------
    @contextlib.contextmanager
    def stream(self) -> Iterator["GraphStream"]:
        """The graph as chunked reads of one consistent snapshot, for processes that must not
        hold the whole graph (:mod:`graphrec.store.stream`)::

            with store.stream() as graph:
                for chunk in graph.friendships(chunk_rows=1_000_000):
                    ...  # chunk.user_lo, chunk.user_hi: int64 internal ids

        The read transaction stays open for the ``with`` block (repeatable read on PostgreSQL)."""
        from graphrec.store.stream import GraphStream

        with self.read() as conn:
            yield GraphStream(conn)

    def snapshot(self, *, include_synthetic: bool = True, label_source: str | None = None) -> Snapshot:
        """A consistent snapshot of active users (see :class:`~graphrec.store.snapshot.Snapshot`)."""
        with self.read() as conn:
            return read_snapshot(conn, include_synthetic=include_synthetic, label_source=label_source)

    def export(self, what: str, path: str | Path) -> ExportResult:
        """Write ``what`` (``users``, ``friendships`` or ``labels``) of the active users as a CSV
        that ``graphrec import`` reads back, from one consistent read (formats in
        :mod:`graphrec.store.exporters`; synthetic users always carry their flag). The file is
        written beside ``path`` and renamed into place, so a failed export leaves no partial file."""
        from graphrec.store import exporters

        writers = {"users": exporters.export_users, "friendships": exporters.export_friendships, "labels": exporters.export_labels}
        if what not in writers:
            raise InputError(f"cannot export {what!r}: choose one of {', '.join(EXPORTS)}")
        info: dict[str, str] = {}
        with self.read() as conn:
            rows = exporters.export_users(conn, path, info) if what == "users" else writers[what](conn, path)
        id_column = info.get("id_column")
        id_column = id_column if id_column != "id" else None
        log.info("exported %d %s rows to %s", rows, what, path)
        return ExportResult(what, rows, Path(path), id_column)

    def table_sizes(self) -> dict[str, int]:
        """Rows in each table of the schema (``score_staging`` included), in one read transaction."""
        with self.read() as conn:
            return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                    for t in Base.metadata.sorted_tables}

    def model_runs(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The ``limit`` latest completed training runs (of ``kind``), oldest first: kind, version,
        seed, params, metrics, the data revision they saw and when they finished."""
        query = select(ModelRun.kind, ModelRun.version, ModelRun.seed, ModelRun.params, ModelRun.metrics, ModelRun.data_revision,
                       ModelRun.finished_at).where(ModelRun.status == "completed")
        if kind is not None:
            query = query.where(ModelRun.kind == kind)
        with self.read() as conn:
            rows = conn.execute(query.order_by(ModelRun.id.desc()).limit(limit)).all()
        out = []
        for r in reversed(rows):
            params, metrics = (json.loads(v) if isinstance(v, str) else (v or {}) for v in (r.params, r.metrics))
            out.append({"kind": r.kind, "version": r.version, "seed": r.seed, "params": params, "metrics": metrics,
                        "data_revision": r.data_revision, "finished_at": r.finished_at})
        return out

    def schema_history(self) -> list[dict[str, Any]]:
        """Every schema revision (Alembic, oldest first) with its message and whether this database
        has it applied."""
        current = self.schema_status().current
        history = migrate.revision_history()
        order = [rev for rev, _ in history]
        upto = order.index(current) if current in order else -1
        return [{"revision": rev, "message": msg, "applied": i <= upto, "current": rev == current} for i, (rev, msg) in enumerate(history)]

    def revision(self) -> int:
        """The store's data version (bumped by every write that changes something)."""
        with self.read() as conn:
            return int(conn.execute(_REVISION).scalar_one())

    def stats(self) -> StoreStats:
        """Counts, density and connected components of the active graph."""
        import scipy.sparse.csgraph as csgraph

        with self.read() as conn:
            snap = read_snapshot(conn)
            deleted = conn.execute(select(func.count()).select_from(User).where(User.deleted_at.is_not(None))).scalar_one()
            blocks = conn.execute(select(func.count()).select_from(Block)).scalar_one()
            circles = conn.execute(select(func.count()).select_from(Circle)).scalar_one()
        n, m = snap.num_nodes, snap.num_edges
        labels: dict[str, int] = {}
        for lab in snap.labels.tolist():
            if lab is not None:
                labels[lab] = labels.get(lab, 0) + 1
        if n:
            ncomp, comp = csgraph.connected_components(snap.to_scipy(), directed=False)
            largest = int(np.bincount(comp).max())
        else:
            ncomp, largest = 0, 0
        deg = snap.degrees
        return StoreStats(
            revision=snap.revision,
            users=n,
            synthetic_users=int(snap.is_synthetic.sum()),
            deleted_users=int(deleted),
            friendships=m,
            blocks=int(blocks),
            labels=dict(sorted(labels.items())),
            circles=int(circles),
            feature_columns=len(snap.feature_names),
            density=(2.0 * m / (n * (n - 1))) if n > 1 else 0.0,
            mean_degree=float(deg.mean()) if n else 0.0,
            isolated_users=int((deg == 0).sum()),
            components=int(ncomp),
            largest_component=largest,
        )
