"""Streamed reads of the graph: users and friendships in bounded chunks (issue 17, first piece).

:func:`~graphrec.store.snapshot.read_snapshot` holds the whole graph in one process: 1M users
and 10M friendships take most of an 8 GiB budget. The distributed path reads the store as a
sequence of chunks instead, each at most ``chunk_rows`` rows, by **keyset pagination** on the
tables' primary keys (users by ``id``, friendships by ``(user_lo, user_hi)``): every chunk is one
index range scan that starts where the last one ended, so the cost per chunk does not grow with
the offset (as ``OFFSET`` would), and no process ever holds more than one chunk.

Every chunk of one :class:`GraphStream` is read in the same repeatable-read transaction
(PostgreSQL) or read transaction (SQLite), so the chunks together are exactly one consistent
snapshot: the same users and friendships :func:`read_snapshot` would return at that moment
(active users only; a friendship with a deleted user is left out), and the same store revision.

The chunks are plain numpy arrays of internal ids: what a partition writer (Arrow/Parquet) or a
Ray Data stage consumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sqlalchemy import BigInteger, Connection, and_, bindparam, func, select, tuple_

from graphrec.store.schema import FeatureColumn, Friendship, Label, StoreRevision, User
from graphrec.store.vectors import decode_rows

#: default rows per chunk: users (with their feature blobs) and friendships (two integers)
USER_CHUNK = 100_000
FRIENDSHIP_CHUNK = 1_000_000

_FRIENDSHIPS = (
    select(Friendship.user_lo, Friendship.user_hi)
    .where(tuple_(Friendship.user_lo, Friendship.user_hi) > tuple_(bindparam("lo", type_=BigInteger), bindparam("hi", type_=BigInteger)))
    .order_by(Friendship.user_lo, Friendship.user_hi)
    .limit(bindparam("n", type_=BigInteger))
)


@dataclass(frozen=True)
class UserChunk:
    """Active users with internal ids in one range: ``user_ids`` (``int64``, ascending),
    ``external_ids`` (``object`` of ``str``), ``features`` (``float32[rows, d]``) and
    ``is_synthetic`` (``bool``)."""

    user_ids: np.ndarray
    external_ids: np.ndarray
    features: np.ndarray
    is_synthetic: np.ndarray


@dataclass(frozen=True)
class FriendshipChunk:
    """Friendships between active users, ``user_lo < user_hi`` (internal ids, ``int64``),
    in key order."""

    user_lo: np.ndarray
    user_hi: np.ndarray


class GraphStream:
    """The chunked reads of one consistent snapshot (made by
    :meth:`GraphStore.stream <graphrec.store.store.GraphStore.stream>`, valid inside its
    ``with`` block): :attr:`revision`, :attr:`feature_names`, :meth:`users` and
    :meth:`friendships`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        #: the store revision every chunk of this stream belongs to
        self.revision = int(conn.execute(select(StoreRevision.revision).where(StoreRevision.id == 1)).scalar_one())
        #: the feature columns, in position order (the width of every chunk's ``features``)
        self.feature_names: list[str] = list(conn.execute(select(FeatureColumn.name).order_by(FeatureColumn.position)).scalars())
        # deleted users are few: their friendships are dropped from each page in numpy, so a
        # page is one primary-key range scan of ``friendships`` with no join
        self._deleted = np.sort(np.fromiter(conn.execute(select(User.id).where(User.deleted_at.is_not(None))).scalars(), dtype=np.int64))

    def count_users(self, *, include_synthetic: bool = True) -> int:
        """How many active users :meth:`users` yields (what a partitioner sizes its ranges by)."""
        query = select(func.count()).select_from(User).where(User.deleted_at.is_(None))
        if not include_synthetic:
            query = query.where(User.is_synthetic == False)  # noqa: E712
        return int(self._conn.execute(query).scalar_one())

    def labels(self, label_source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every user's current label as ``(user_ids int64, labels object)``, sorted by user id,
        one per user: the latest label wins across sources (by ``updated_at``, then source), as in
        :func:`~graphrec.store.snapshot.read_snapshot`; only ``label_source``'s when given.
        Labels are a small share of the users (a few labelled accounts), so they come in one read."""
        query = select(Label.user_id, Label.label)
        if label_source is not None:
            query = query.where(Label.source == label_source)
        latest: dict[int, str] = {}
        for uid, lab in self._conn.execute(query.order_by(Label.updated_at, Label.source)):
            latest[int(uid)] = str(lab)
        ids = np.fromiter(latest.keys(), dtype=np.int64, count=len(latest))
        labs = np.array(list(latest.values()), dtype=object)
        order = np.argsort(ids, kind="stable")
        return ids[order], labs[order]

    def users(self, chunk_rows: int = USER_CHUNK, *, include_synthetic: bool = True) -> Iterator[UserChunk]:
        """Active users in internal-id order, at most ``chunk_rows`` per chunk."""
        _check_chunk(chunk_rows)
        query = select(User.id, User.external_id, User.features, User.is_synthetic).where(User.deleted_at.is_(None))
        if not include_synthetic:
            query = query.where(User.is_synthetic == bindparam("f"))
        query = query.where(User.id > bindparam("after")).order_by(User.id).limit(bindparam("n"))
        after = -1
        while True:
            params = {"after": after, "n": chunk_rows, **({} if include_synthetic else {"f": False})}
            rows = self._conn.execute(query, params).all()
            if not rows:
                return
            yield UserChunk(
                user_ids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                external_ids=np.array([r[1] for r in rows], dtype=object),
                features=decode_rows([r[2] for r in rows], len(self.feature_names)),
                is_synthetic=np.fromiter((bool(r[3]) for r in rows), dtype=bool, count=len(rows)),
            )
            if len(rows) < chunk_rows:
                return
            after = int(rows[-1][0])

    def friendships(self, chunk_rows: int = FRIENDSHIP_CHUNK) -> Iterator[FriendshipChunk]:
        """Friendships between active users in ``(user_lo, user_hi)`` order, at most
        ``chunk_rows`` per chunk."""
        _check_chunk(chunk_rows)
        lo = hi = -1
        while True:
            a, b = self._friendship_page(lo, hi, chunk_rows)
            if a.size == 0:
                return
            rows, last = a.size, (int(a[-1]), int(b[-1]))
            if self._deleted.size:
                keep = ~(np.isin(a, self._deleted) | np.isin(b, self._deleted))
                a, b = a[keep], b[keep]
            if a.size:
                yield FriendshipChunk(user_lo=a, user_hi=b)
            if rows < chunk_rows:
                return
            lo, hi = last

    def _friendship_page(self, lo: int, hi: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n`` friendships after ``(lo, hi)``, straight from the driver (binary
        ``COPY`` on PostgreSQL, the raw cursor on SQLite): no Python object per row."""
        from graphrec.store.bulk import driver_connection
        from graphrec.store.snapshot import copy_pairs

        params = {"lo": int(lo), "hi": int(hi), "n": int(n)}
        if self._conn.dialect.name == "postgresql":
            # COPY takes no parameters: the three integers are rendered into the query
            literal = _FRIENDSHIPS.params(**params).compile(dialect=self._conn.dialect, compile_kwargs={"literal_binds": True})
            return copy_pairs(self._conn, str(literal))
        compiled = _FRIENDSHIPS.compile(dialect=self._conn.dialect)
        cur = driver_connection(self._conn).cursor()
        try:
            values = compiled.construct_params(params)
            cur.execute(str(compiled), [values[k] for k in compiled.positiontup or []])
            rows = cur.fetchall()
        finally:
            cur.close()
        pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return pairs[:, 0].copy(), pairs[:, 1].copy()


def _check_chunk(chunk_rows: int) -> None:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
