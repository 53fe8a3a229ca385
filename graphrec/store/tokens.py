"""API tokens for ``graphrec serve``: create, list, revoke and verify bearer tokens.

A token is a random secret, ``grt_`` followed by 43 URL-safe characters (32 random bytes from
:mod:`secrets`), handed to its holder exactly once, when it is created. The store keeps only the
SHA-256 hex digest of the secret (``api_tokens.token_hash``), its first characters (``prefix``,
so a person can tell tokens apart in a listing), its name, its scopes and its dates.

Why a plain SHA-256 and not a slow password hash (bcrypt, scrypt, argon2): slow hashes protect
*low-entropy* secrets that people choose, where an attacker with the table could try likely
passwords. A token carries 256 random bits; no dictionary exists and brute force over 2**256 is
out of reach at any hash speed, so a fast, unsalted digest is as safe here, and it lets
:func:`verify_token`, which runs on every request, find the token by one indexed equality look-up
on the unique ``token_hash`` column (a salted hash could not be looked up, only compared row by row).

Scopes are hierarchical: ``admin`` grants ``write`` and ``read``; ``write`` grants ``read``
(:meth:`TokenInfo.allows`). A token is *active* while it is neither revoked nor expired; revoked
tokens stay in the table (``list_tokens(include_revoked=True)`` shows when they were revoked).

Every error is one line (:mod:`graphrec.errors`) and never contains a secret or a hash. Token
writes do not bump the store's data revision: tokens are not graph data, and a model trained
before a token was created still describes the same graph.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from graphrec.errors import InputError, NotFoundError
from graphrec.store.schema import ApiToken, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

#: Every scope, lowest first. Hierarchical: each scope grants those before it.
SCOPES: tuple[str, ...] = ("read", "write", "admin")

#: What every secret starts with (lets secret scanners and people recognise a graphrec token).
SECRET_PREFIX = "grt_"
#: How many leading characters of a secret are stored and shown (``grt_`` plus 8 random ones).
PREFIX_LENGTH = 12
#: Longest name a token may have (the column is ``String(64)``).
MAX_NAME_LENGTH = 64
#: A longer string cannot be a graphrec secret; :func:`verify_token` rejects it without hashing.
_MAX_SECRET_LENGTH = 256

_COLUMNS = (ApiToken.id, ApiToken.name, ApiToken.prefix, ApiToken.scopes, ApiToken.created_at, ApiToken.expires_at,
            ApiToken.revoked_at)
#: the request path's one statement, built once (SQLAlchemy caches its compiled form)
_BY_HASH = select(*_COLUMNS).where(ApiToken.token_hash == bindparam("h"))


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _aware(moment: dt.datetime) -> dt.datetime:
    """``moment`` as aware UTC (a naive datetime is taken to be UTC, as the store stores it)."""
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class TokenInfo:
    """What the store knows about a token: everything except its secret (which it never has) and
    its hash (which is of no use outside :func:`verify_token`)."""

    id: int
    name: str
    prefix: str
    #: the token's scopes, sorted, without duplicates
    scopes: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def allows(self, scope: str) -> bool:
        """True when the token grants ``scope``: one of its own scopes is ``scope`` or ranks above it
        (``admin`` grants ``write`` and ``read``, ``write`` grants ``read``). An unknown scope is
        granted by nothing. Says nothing about whether the token is :attr:`active`."""
        if scope not in SCOPES:
            return False
        need = SCOPES.index(scope)
        return any(s in SCOPES and SCOPES.index(s) >= need for s in self.scopes)

    @property
    def active(self) -> bool:
        """True while the token is neither revoked nor expired (``expires_at`` is exclusive: a
        token is expired from that moment on)."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or utcnow() < _aware(self.expires_at)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able fields (times as ISO 8601 strings, UTC) plus ``active``; never the secret or
        its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "active": self.active,
        }


@dataclass(frozen=True)
class NewToken:
    """A token just created: its :class:`TokenInfo` and its plaintext ``secret``, which is returned
    here exactly once and cannot be recovered later (only its hash is stored)."""

    info: TokenInfo
    secret: str

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"NewToken(info={self.info!r}, secret='{self.info.prefix}...')"


def hash_secret(secret: str) -> str:
    """The hex SHA-256 digest of ``secret`` (UTF-8), as stored in ``api_tokens.token_hash``."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _info(row: Row[int, str, str, str, dt.datetime, dt.datetime | None, dt.datetime | None]) -> TokenInfo:
    return TokenInfo(id=int(row.id), name=row.name, prefix=row.prefix, scopes=tuple(s for s in row.scopes.split(",") if s),
                     created_at=row.created_at, expires_at=row.expires_at, revoked_at=row.revoked_at)


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise InputError(f"a token name must be text, not {type(name).__name__}")
    if not name or not name.strip():
        raise InputError("a token name must not be empty or only whitespace")
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(f"a token name has at most {MAX_NAME_LENGTH} characters (this one has {len(name)})")
    if not name.isprintable():
        raise InputError(f"a token name must be printable (no control characters or line breaks): {name!r}")
    if name.isdigit():
        raise InputError(f"a token name must not be only digits ({name!r}): `tokens revoke` takes a numeric id or a name")
    return name


def _check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(scopes, str):  # one scope given as text, not a sequence of characters
        scopes = [scopes]
    wanted = list(scopes)
    if not wanted:
        raise InputError(f"a token needs at least one scope (one of {', '.join(SCOPES)})")
    for scope in wanted:
        if scope not in SCOPES:
            raise InputError(f"unknown scope {scope!r}: the scopes are {', '.join(SCOPES)}")
    return tuple(sorted(set(wanted)))


def create_token(store: "GraphStore", name: str, scopes: Sequence[str], *, expires_at: dt.datetime | None = None) -> NewToken:
    """Create a token called ``name`` granting ``scopes`` (a non-empty subset of :data:`SCOPES`),
    valid until ``expires_at`` (never, when None; a naive datetime is UTC), in one write
    transaction. Returns its info and its secret; the secret is not stored and cannot be shown
    again, so the caller must hand it over now.

    Raises :class:`~graphrec.errors.InputError` for a name that is empty, whitespace only, longer
    than 64 characters, not printable, only digits (it would read as an id) or already taken, for
    an unknown scope or no scope, and for an ``expires_at`` that is not in the future."""
    name = _check_name(name)
    wanted = _check_scopes(scopes)
    now = utcnow()
    if expires_at is not None:
        expires_at = _aware(expires_at)
        if expires_at <= now:
            raise InputError(f"expires_at {expires_at.isoformat()} is in the past: a token must expire in the future")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    try:
        with store.write() as conn:
            if conn.execute(select(ApiToken.id).where(ApiToken.name == name)).first() is not None:
                raise InputError(f"a token named {name!r} already exists")
            conn.execute(insert(ApiToken).values(name=name, token_hash=hash_secret(secret), prefix=secret[:PREFIX_LENGTH],
                                                 scopes=",".join(wanted), created_at=now, expires_at=expires_at))
            row = conn.execute(select(*_COLUMNS).where(ApiToken.name == name)).one()
    except IntegrityError:  # another process created a token of that name since the check above
        raise InputError(f"a token named {name!r} already exists") from None
    return NewToken(_info(row), secret)


def list_tokens(store: "GraphStore", *, include_revoked: bool = False) -> list[TokenInfo]:
    """Every token, oldest first (by id); revoked tokens only with ``include_revoked``. Expired
    tokens are listed (their ``active`` is False) until they are revoked."""
    query = select(*_COLUMNS).order_by(ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    with store.read() as conn:
        return [_info(row) for row in conn.execute(query)]


def _describe_ref(ref: str) -> str:
    """How an error names ``ref``: never echo something that looks like a secret."""
    if ref.startswith(SECRET_PREFIX) and len(ref) > PREFIX_LENGTH:
        return f"{ref[:PREFIX_LENGTH]}... (this looks like a token's secret: revoke by id or name, as `graphrec tokens list` shows them)"
    return repr(ref)


def revoke_token(store: "GraphStore", ref: str) -> TokenInfo:
    """Revoke the token ``ref`` names, by numeric id (``"3"``) or by name, in one write
    transaction; returns it as revoked. The row is kept (with ``revoked_at``), so listings with
    revoked tokens show it, and :func:`verify_token` refuses it from now on.

    Raises :class:`~graphrec.errors.NotFoundError` when no token has that id or name, and
    :class:`~graphrec.errors.InputError` when it is revoked already."""
    ref = str(ref).strip()
    where = ApiToken.id == int(ref) if ref.isdigit() and ref.isascii() else ApiToken.name == ref
    with store.write() as conn:
        row = conn.execute(select(*_COLUMNS).where(where)).first()
        if row is None:
            raise NotFoundError(f"no API token with id or name {_describe_ref(ref)}")
        done = conn.execute(update(ApiToken).where(ApiToken.id == row.id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
        if done.rowcount != 1:
            raise InputError(f"API token {row.name!r} (id {row.id}) was already revoked at {_iso(row.revoked_at) or 'a moment ago'}")
        return _info(conn.execute(select(*_COLUMNS).where(ApiToken.id == row.id)).one())


def verify_token(store: "GraphStore", secret: str) -> TokenInfo | None:
    """The token whose secret is ``secret`` if it is active, else None (unknown, revoked or
    expired: the caller answers all three alike, so a client learns nothing about which).

    On the request path: one indexed SELECT by hash in a read transaction, no write (no "last
    used" time), nothing logged. Text that cannot be a graphrec secret is rejected before hashing."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX) or len(secret) > _MAX_SECRET_LENGTH:
        return None
    digest = hash_secret(secret)
    with store.read() as conn:
        row = conn.execute(_BY_HASH, {"h": digest}).first()
    if row is None:
        return None
    info = _info(row)
    return info if info.active else None
