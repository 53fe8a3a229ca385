"""Named job locks in the store, so two batch jobs (cron, Airflow retries) never run at once.

A lock is a row of ``job_locks`` (the ORM row is :class:`graphrec.store.schema.JobLock`): ``owner``
(``host:pid:token``) and ``expires_at``. A job holds it as a :class:`JobLease`. Taking it is one
short write transaction; it is free when no row exists, when the row has expired, or when its
owner is a process on this host that no longer exists (a job killed with SIGKILL leaves its row
behind, and the rerun takes the lock over at once); taking a stale lock over is one atomic
conditional ``UPDATE``, so of two processes racing for it exactly one wins. A running job extends ``expires_at``
(:meth:`JobLease.heartbeat`) and its final write checks, in the same transaction, that it still
owns the lock (:func:`assert_owner`), so a job whose lock was taken over cannot write.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from graphrec.errors import JobLockedError
from graphrec.store.bulk import naive_utc
from graphrec.store.schema import JobLock

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore


def _now() -> dt.datetime:
    return naive_utc(dt.datetime.now(dt.UTC))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(owner: str, expires_at: Any, now: dt.datetime) -> bool:
    if isinstance(expires_at, str):
        expires_at = dt.datetime.fromisoformat(expires_at)
    if naive_utc(expires_at) <= now:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


class JobLease:
    """This process's hold on the job lock ``name`` (for ``ttl`` seconds unless extended by
    :meth:`heartbeat`): :meth:`acquire` it, or use it as a context manager; :meth:`release` it."""

    def __init__(self, store: "GraphStore", name: str, *, ttl: float = 900.0) -> None:
        self.store, self.name, self.ttl = store, name, ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False

    def acquire(self) -> "JobLease":
        """Take the lock; :class:`~graphrec.errors.JobLockedError` when a live job holds it."""
        now = _now()
        expires = now + dt.timedelta(seconds=self.ttl)
        try:
            with self.store.write() as conn:
                row = conn.execute(select(JobLock.owner, JobLock.expires_at).where(JobLock.name == self.name)).first()
                if row is None:
                    conn.execute(insert(JobLock).values(name=self.name, owner=self.owner, acquired_at=now, expires_at=expires))
                elif _is_stale(row[0], row[1], now):
                    # One conditional UPDATE: it takes the lock over only if the row is still the
                    # stale one read above (same owner, same expiry). Two processes that both saw
                    # it stale race here; the database lets one UPDATE match, the other matches no
                    # row (PostgreSQL re-checks the WHERE after the winner commits) and is refused.
                    # (SQLite's BEGIN IMMEDIATE already serialises the read and the write; there the
                    # expiry is text that a raw writer may have formatted differently, so only the owner
                    # is compared.)
                    same = [JobLock.name == self.name, JobLock.owner == row[0]]
                    if conn.dialect.name == "postgresql":
                        same.append(JobLock.expires_at == row[1])  # not renewed by a heartbeat meanwhile
                    taken = conn.execute(update(JobLock).where(*same).values(owner=self.owner, acquired_at=now, expires_at=expires))
                    if taken.rowcount != 1:
                        raise JobLockedError(f"job {self.name!r} is already running (another process took the stale lock over first)")
                else:
                    raise JobLockedError(f"job {self.name!r} is already running (lock held by {row[0]} until {row[1]} UTC)")
        except IntegrityError:
            raise JobLockedError(f"job {self.name!r} is already running (lock taken concurrently)") from None
        self.held = True
        return self

    def heartbeat(self) -> None:
        """Extend the lock's expiry; raises :class:`JobLockedError` if it was taken over."""
        with self.store.write() as conn:
            assert_owner(conn, self.name, self.owner)
            conn.execute(update(JobLock).where(JobLock.name == self.name, JobLock.owner == self.owner)
                         .values(expires_at=_now() + dt.timedelta(seconds=self.ttl)))

    def release(self) -> None:
        """Give the lock up (only if this lease still owns it)."""
        if self.held:
            with self.store.write() as conn:
                conn.execute(delete(JobLock).where(JobLock.name == self.name, JobLock.owner == self.owner))
            self.held = False

    def __enter__(self) -> "JobLease":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def assert_owner(conn: Connection, name: str, owner: str) -> None:
    """Inside a write transaction: raise unless ``owner`` still holds lock ``name``."""
    row = conn.execute(select(JobLock.owner).where(JobLock.name == name)).first()
    if row is None or row[0] != owner:
        raise JobLockedError(f"lost the lock on job {name!r} (now held by {row[0] if row else 'nobody'}); nothing written")


#: The PostgreSQL advisory-lock key every import transaction takes (ASCII ``grecimpt``).
IMPORT_LOCK_KEY = 0x67726563696D7074


def serialise_imports(conn: Connection) -> None:
    """Inside an import's write transaction, first thing: wait until no other import transaction
    is running, and hold that until this one commits or rolls back.

    On PostgreSQL this is a transaction-level advisory lock (``pg_advisory_xact_lock``), released
    by the database at commit or rollback, even when the process dies; so two concurrent imports
    with overlapping new users run one after the other, and the second sees the first's users
    (read committed) instead of failing with a unique violation or a deadlock. On SQLite it does
    nothing: ``BEGIN IMMEDIATE`` already serialises writers."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK_KEY})
