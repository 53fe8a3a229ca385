"""Bearer-token authentication with scopes.

Every ``/v1`` route needs ``Authorization: Bearer <token>`` with a scope: ``read`` for the reads,
``write`` for the writes, ``admin`` for hard deletes and forced model reloads. Scopes are
hierarchical (``admin`` grants ``write`` and ``read``; ``write`` grants ``read``). Tokens are made
with ``graphrec tokens create`` and stored hashed (:mod:`graphrec.store.tokens`); a revoked or
expired token stops working within a second on every worker (:class:`TokenCache`).

``401`` (with ``WWW-Authenticate: Bearer``) without a valid token, ``403`` when the token lacks
the scope. The token is never logged nor echoed in an error. ``/healthz``, ``/readyz`` and
``/metrics`` are open, for load balancers and scrapers; ``graphrec serve --no-auth`` (loopback
hosts only) opens everything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.exceptions import HTTPException

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
#: How long a worker trusts a token it verified (seconds): a revoked or expired token stops
#: working within this time on every worker, and a busy server reads each token once a second
#: instead of once a request.
TOKEN_CACHE_SECONDS = 1.0
#: The OpenAPI security scheme every ``/v1`` route declares (:func:`openapi_security`).
SCHEME = "bearerAuth"


def openapi_security(scope: str) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that needs ``scope``: the bearer scheme, and the scope
    named in the operation (``x-required-scope``)."""
    return {"security": [{SCHEME: []}], "x-required-scope": scope}


def add_security_scheme(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the bearer scheme in an OpenAPI document's components."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http", "scheme": "bearer",
        "description": "A token from `graphrec tokens create` (scopes read, write, admin; admin grants write, write grants read)."}
    return schema


class TokenCache:
    """Verified tokens of one worker for :data:`TOKEN_CACHE_SECONDS`, keyed by the secret's
    SHA-256 (never the secret); unknown tokens are not cached, so a new token works at once."""

    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def verify(self, store: "GraphStore", secret: str, verify: Callable[["GraphStore", str], Any]) -> Any:
        from graphrec.store.tokens import hash_secret

        key = hash_secret(secret)
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now < hit[0] and hit[1].active:
            return hit[1]
        info = verify(store, secret)
        with self._lock:
            if info is None:
                self._entries.pop(key, None)
            else:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self.ttl, info)
        return info


def _bearer_token(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authorize(request: Request, scope: str) -> None:
    """Check the request's bearer token for ``scope`` (a store read at most once a second per
    token: call it off the event loop). ``401`` without a valid token, ``403`` without the
    scope; the token's :class:`~graphrec.store.tokens.TokenInfo` is kept on the request for the
    access log and for routes that need more (a hard delete needs ``admin``)."""
    state = request.app.state
    if not state.auth:
        return
    secret = _bearer_token(request)
    if secret is None:
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>' (graphrec tokens create)", headers=_CHALLENGE)
    info = state.token_cache.verify(state.store, secret, state.verify_token)
    if info is None:
        raise HTTPException(401, "invalid, revoked or expired token", headers=_CHALLENGE)
    if not info.allows(scope):
        raise HTTPException(403, f"token {info.name!r} lacks the {scope!r} scope (it has {', '.join(info.scopes)})")
    request.scope["graphrec.token"] = info  # the access log names it; a hard delete checks admin
