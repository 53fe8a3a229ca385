"""``GraphStore``: the library API over the SQL graph store.

Public methods speak *external* ids (the ids users were imported with; ints are accepted and
turned into their decimal text). Every write runs in one transaction and bumps the store
revision when it changes something; every read that spans several queries (snapshots, stats)
runs in one repeatable-read transaction.

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
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, select, text, update

from graphrec.config import Settings
from graphrec.errors import InputError, NotFoundError
from graphrec.store import bulk, migrate
from graphrec.store.engine import SQLITE_BEGIN_OPTION, get_engine
from graphrec.store.features import decode_vector, encode_vector, stored_length
from graphrec.store.report import ImportReport
from graphrec.store.schema import Block, FeatureColumn, Friendship, Label, ModelRun, User, utcnow
from graphrec.store.snapshot import Snapshot, read_snapshot

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.importers import EdgeBatch, LabelBatch, UserBatch

UserRef = str | int

#: The friends of the user whose internal id is ``{u}`` (an SQL expression), as column ``n``.
_FRIENDS_OF = (
    "SELECT user_hi AS n FROM friendships WHERE user_lo = {u} "
    "UNION ALL SELECT user_lo AS n FROM friendships WHERE user_hi = {u}"
)


def _ext(user: UserRef) -> str:
    if isinstance(user, bool) or not isinstance(user, (str, int, np.integer)):
        raise InputError(f"user id must be text or an integer, got {type(user).__name__}")
    value = str(user).strip()
    if not value:
        raise InputError("empty user id")
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


class GraphStore:
    """The SQL graph store (SQLite or PostgreSQL)."""

    def __init__(self, database_url: str | None = None, *, home: str | Path | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.resolve(database_url, home)
        self.engine: Engine = get_engine(self.settings.database_url)
        self._schema_ok = False

    def __repr__(self) -> str:
        return f"GraphStore({self.engine.url.render_as_string()!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- schema ------------------------------------------------------------------------------
    def initialize(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Bring the schema to ``revision`` (default: the newest). Returns (before, after)."""
        result = migrate.upgrade(self.engine, revision)
        self._schema_ok = False
        return result

    def initialize_if_empty(self) -> bool:
        """Create the schema when the database is empty; True if it did."""
        if migrate.is_empty(self.engine):
            self.initialize()
            return True
        return False

    def check_schema(self) -> None:
        """Raise :class:`StoreStateError` unless the schema is at the code's head revision."""
        if not self._schema_ok:
            migrate.require_current(self.engine)
            self._schema_ok = True

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
        row = conn.execute(select(User.id, User.deleted_at).where(User.external_id == ext)).first()
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
    ) -> None:
        """Create a user; ``features`` maps feature names to numbers (new names become columns)."""
        ext = _ext(user)
        with self.write() as conn:
            if conn.execute(select(User.id).where(User.external_id == ext)).first() is not None:
                raise InputError(f"user {ext!r} already exists")
            blob = self._encode_features(conn, features)
            now = utcnow()
            conn.execute(
                User.__table__.insert().values(
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
    ) -> None:
        """Merge new attribute values (``None`` removes a key) and feature values into a user."""
        with self.write() as conn:
            uid = self._user_id(conn, user)
            row = conn.execute(select(User.attributes, User.features).where(User.id == uid)).one()
            values: dict[str, Any] = {"updated_at": utcnow()}
            if attributes:
                merged = dict(row.attributes or {})
                for key, value in attributes.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                values["attributes"] = merged or None
            if features:
                values["features"] = self._encode_features(conn, features, base=row.features)
            conn.execute(update(User).where(User.id == uid).values(**values))
            bulk.bump_revision(conn)

    def _encode_features(self, conn: Connection, features: Mapping[str, float] | None, base: bytes | None = None) -> bytes | None:
        if not features:
            return base
        from graphrec.store import loader

        names = list(features)
        vals = np.asarray([features[n] for n in names], dtype=np.float64)
        if not np.isfinite(vals).all():
            bad = names[int(np.flatnonzero(~np.isfinite(vals))[0])]
            raise InputError(f"feature {bad!r} must be a finite number")
        positions, dim, _ = loader.ensure_feature_columns(conn, names)
        vec = decode_vector(base, dim)
        vec[positions] = vals.astype(np.float32)
        return encode_vector(vec)

    def get_user(self, user: UserRef) -> UserRecord:
        """A user's profile (deleted users too, with ``deleted_at`` set)."""
        with self.read() as conn:
            uid = self._user_id(conn, user, include_deleted=True)
            row = conn.execute(select(User.__table__).where(User.id == uid)).one()
            names = [n for (n,) in conn.execute(select(FeatureColumn.name).order_by(FeatureColumn.position))]
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
            exists = conn.execute(
                select(Friendship.user_lo).where(Friendship.user_lo == lo, Friendship.user_hi == hi)
            ).first()
            if exists:
                return False
            conn.execute(Friendship.__table__.insert().values(user_lo=lo, user_hi=hi))
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
        with self.read() as conn:
            ua, ub = self._user_id(conn, a), self._user_id(conn, b)
            lo, hi = min(ua, ub), max(ua, ub)
            return conn.execute(
                select(Friendship.user_lo).where(Friendship.user_lo == lo, Friendship.user_hi == hi)
            ).first() is not None

    def neighbours(self, user: UserRef) -> list[str]:
        """External ids of the user's active friends, sorted."""
        with self.read() as conn:
            uid = self._user_id(conn, user)
            rows = conn.execute(
                text(f"SELECT u.external_id FROM users u JOIN ({_FRIENDS_OF.format(u=':u')}) f ON u.id = f.n WHERE u.deleted_at IS NULL"),
                {"u": uid},
            ).all()
        return sorted(r[0] for r in rows)

    neighbors = neighbours

    def degree(self, user: UserRef) -> int:
        """Number of active friends."""
        return len(self.neighbours(user))

    def mutual_friends(self, a: UserRef, b: UserRef) -> list[str]:
        """External ids of the active users who are friends of both, sorted."""
        return sorted(set(self.neighbours(a)) & set(self.neighbours(b)))

    # -- blocks ------------------------------------------------------------------------------
    def block(self, blocker: UserRef, blocked: UserRef) -> bool:
        """Record that ``blocker`` blocked ``blocked``; False if already recorded."""
        with self.write() as conn:
            ua, ub = self._user_id(conn, blocker), self._user_id(conn, blocked)
            if ua == ub:
                raise InputError(f"user {_ext(blocker)!r} cannot block itself")
            if conn.execute(select(Block.blocker_id).where(Block.blocker_id == ua, Block.blocked_id == ub)).first():
                return False
            conn.execute(Block.__table__.insert().values(blocker_id=ua, blocked_id=ub, created_at=utcnow()))
            bulk.bump_revision(conn)
            return True

    def unblock(self, blocker: UserRef, blocked: UserRef) -> bool:
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
            rows = conn.execute(
                text(
                    "SELECT u.external_id FROM users u JOIN ("
                    "SELECT blocked_id AS n FROM blocks WHERE blocker_id = :u "
                    "UNION SELECT blocker_id AS n FROM blocks WHERE blocked_id = :u) b ON u.id = b.n"
                ),
                {"u": uid},
            ).all()
        return sorted(r[0] for r in rows)

    # -- labels ------------------------------------------------------------------------------
    def set_label(self, user: UserRef, label: str, *, source: str = "manual") -> None:
        """Set the user's label from ``source`` (one current label per user and source)."""
        label = str(label).strip()
        if not label or len(label) > 64:
            raise InputError("label must be 1 to 64 characters")
        with self.write() as conn:
            uid = self._user_id(conn, user)
            now = utcnow()
            res = conn.execute(
                update(Label).where(Label.user_id == uid, Label.source == source).values(label=label, updated_at=now)
            )
            if not res.rowcount:
                conn.execute(
                    Label.__table__.insert().values(user_id=uid, source=source, label=label, created_at=now, updated_at=now)
                )
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
    def _run_import(self, kind: str, source: str, body: Any) -> ImportReport:
        report = ImportReport(kind=kind, source=source)
        start = time.perf_counter()
        with self.write() as conn:
            body(conn, report)
            if report.changed:
                report.revision = bulk.bump_revision(conn)
            else:
                report.revision = int(conn.execute(text("SELECT revision FROM store_revision")).scalar_one())
        report.seconds = round(time.perf_counter() - start, 3)
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
        """Import directed blocks (``blocker blocked`` per row, same formats as edges)."""
        from graphrec.store import loader
        from graphrec.store.importers import read_edges

        batch = read_edges(path, **options)

        def body(conn: Connection, report: ImportReport) -> None:
            report.rows_read = batch.rows_read
            report.skipped = dict(batch.skipped)
            loader.write_blocks(conn, batch, report)

        return self._run_import("blocks", batch.source, body)

    def load_users(self, batch: UserBatch) -> ImportReport:
        """Write a validated user batch in one transaction."""
        from graphrec.progress import progress_bar
        from graphrec.store import loader

        def body(conn: Connection, report: ImportReport) -> None:
            report.rows_read = len(batch.external_ids)
            with progress_bar(total=len(batch.external_ids), desc="users", unit="user") as bar:
                loader.write_users(conn, batch, report, progress=bar.update)

        return self._run_import("users", batch.source, body)

    def import_users(self, path: str | Path, **options: Any) -> ImportReport:
        """Import a users CSV (see :func:`graphrec.store.importers.read_users`)."""
        from graphrec.store.importers import read_users

        return self.load_users(read_users(path, **options))

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

    def import_ego_facebook(self, path: str | Path | None = None) -> ImportReport:
        """Import SNAP ego-Facebook (bundled copy unless ``path`` names a folder of SNAP files):
        users with their 1,406 binary features, friendships and circles, in one transaction."""
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

        def body(conn: Connection, report: ImportReport) -> None:
            report.rows_read = len(ids) + int(data.edges.shape[0])
            loader.write_users(conn, users, report)
            loader.write_edges(conn, edges, report, create_users=False)
            loader.write_circles(conn, circles, report, source="ego-facebook")

        return self._run_import("ego-facebook", users.source, body)

    def load_synthetic(self, users: UserBatch, edges: EdgeBatch, labels: LabelBatch | None = None) -> ImportReport:
        """Write synthetic users (``users.is_synthetic`` must all be true), their friendships and
        optional labels in ONE transaction: either all of it lands or none of it."""
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

        return self._run_import("synthetic", users.source, body)

    def purge_synthetic(self) -> dict[str, int]:
        """Delete every synthetic user with their friendships, blocks, labels, circle memberships
        and scores, in one transaction. Returns the counts removed."""
        sub = "(SELECT id FROM users WHERE is_synthetic = :t)"
        counts: dict[str, int] = {}
        with self.write() as conn:
            p = {"t": True}
            counts["friendships"] = int(conn.execute(text(f"DELETE FROM friendships WHERE user_lo IN {sub} OR user_hi IN {sub}"), p).rowcount)
            conn.execute(text(f"DELETE FROM blocks WHERE blocker_id IN {sub} OR blocked_id IN {sub}"), p)
            counts["labels"] = int(conn.execute(text(f"DELETE FROM labels WHERE user_id IN {sub}"), p).rowcount)
            conn.execute(text(f"DELETE FROM circle_members WHERE user_id IN {sub}"), p)
            conn.execute(text(f"UPDATE circles SET owner_id = NULL WHERE owner_id IN {sub}"), p)
            counts["scores"] = int(conn.execute(text(f"DELETE FROM scores WHERE user_id IN {sub}"), p).rowcount)
            counts["users"] = int(conn.execute(text("DELETE FROM users WHERE is_synthetic = :t"), p).rowcount)
            if counts["users"] or counts["friendships"]:
                bulk.bump_revision(conn)
        return counts

    # -- model runs and serving reads --------------------------------------------------------
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
    ) -> None:
        """Record a completed training run (reproducibility: params, seed, metrics, data version)."""
        now = utcnow()
        with self.write() as conn:
            conn.execute(
                ModelRun.__table__.insert().values(
                    kind=kind,
                    version=version,
                    status="completed",
                    seed=seed,
                    params=params,
                    metrics=metrics,
                    data_revision=data_revision,
                    data_fingerprint=data_fingerprint,
                    artifact_path=artifact_path,
                    started_at=started_at or now,
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
            row = conn.execute(
                text("SELECT id, features, deleted_at FROM users WHERE external_id = :e"), {"e": ext}
            ).first()
            if row is None or row[2] is not None:
                raise NotFoundError(f"unknown user {ext!r}")
            uid, blob = row[0], row[1]
            rows = conn.execute(
                text(
                    "SELECT r.kind, u.external_id FROM users u JOIN ("
                    "SELECT 'f' AS kind, user_hi AS n FROM friendships WHERE user_lo = :u "
                    "UNION ALL SELECT 'f', user_lo FROM friendships WHERE user_hi = :u "
                    "UNION ALL SELECT 'b', blocked_id FROM blocks WHERE blocker_id = :u "
                    "UNION ALL SELECT 'b', blocker_id FROM blocks WHERE blocked_id = :u"
                    ") r ON u.id = r.n WHERE u.deleted_at IS NULL OR r.kind = 'b'"
                ),
                {"u": uid},
            ).all()
            if feature_dim is None:
                feature_dim = int(conn.execute(select(func.count()).select_from(FeatureColumn)).scalar_one())
            revision = int(conn.execute(text("SELECT revision FROM store_revision WHERE id = 1")).scalar_one())
        vec = decode_vector(blob, max(feature_dim, stored_length(blob)))[:feature_dim]
        friends = sorted({e for k, e in rows if k == "f"})
        blocked = sorted({e for k, e in rows if k == "b"})
        return {"friends": friends, "blocked": blocked, "features": vec, "revision": revision}

    def _users_in_list(self, alias: str, external_ids: Sequence[str]) -> tuple[str, Any]:
        """FROM-clause joining the id list bound as ``:ids`` to ``users`` (aliased ``alias``), and
        the value to bind. One parameter for the whole list (a JSON array on SQLite, a text[] on
        PostgreSQL) keeps the statement text constant, so it compiles once and is cached; the id
        list drives the join (CROSS JOIN pins SQLite's join order to the unique index)."""
        if self.dialect == "sqlite":
            return f"json_each(:ids) j CROSS JOIN users {alias} ON {alias}.external_id = j.value ", json.dumps(list(external_ids))
        return f"unnest(CAST(:ids AS text[])) AS j(value) JOIN users {alias} ON {alias}.external_id = j.value ", list(external_ids)

    def mutual_friends_with(self, user: UserRef, candidates: Sequence[str]) -> dict[str, list[str]]:
        """Live mutual friends of ``user`` and each of ``candidates`` (active, real users, sorted),
        in one query: what a suggestion's "N mutual friends" reason must show."""
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
        return {c: sorted(v) for c, v in out.items()}

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
        since = bulk.naive_utc(since)
        with self.read() as conn:
            rows = conn.execute(
                text("SELECT external_id, features, deleted_at, is_synthetic FROM users WHERE updated_at > :t OR created_at > :t "
                     "OR deleted_at > :t ORDER BY id"), {"t": since}
            ).all()
        live = [r for r in rows if r[2] is None and not r[3]]
        gone = [r[0] for r in rows if r[2] is not None or r[3]]
        feats = np.zeros((len(live), feature_dim), dtype=np.float32)
        for i, r in enumerate(live):
            vec = decode_vector(r[1], max(feature_dim, stored_length(r[1])))[:feature_dim]
            feats[i, : vec.size] = vec
        return [r[0] for r in live], feats, gone

    # -- snapshot, stats ---------------------------------------------------------------------
    def snapshot(self, *, include_synthetic: bool = True, label_source: str | None = None) -> Snapshot:
        """A consistent snapshot of active users (see :class:`~graphrec.store.snapshot.Snapshot`)."""
        with self.read() as conn:
            return read_snapshot(conn, include_synthetic=include_synthetic, label_source=label_source)

    def revision(self) -> int:
        """The store's data version (bumped by every write that changes something)."""
        with self.read() as conn:
            return int(conn.execute(text("SELECT revision FROM store_revision WHERE id = 1")).scalar_one())

    def stats(self) -> StoreStats:
        """Counts, density and connected components of the active graph."""
        import scipy.sparse.csgraph as csgraph

        with self.read() as conn:
            snap = read_snapshot(conn)
            deleted = conn.execute(select(func.count()).select_from(User).where(User.deleted_at.is_not(None))).scalar_one()
            blocks = conn.execute(select(func.count()).select_from(Block)).scalar_one()
            circles = conn.execute(text("SELECT COUNT(*) FROM circles")).scalar_one()
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
