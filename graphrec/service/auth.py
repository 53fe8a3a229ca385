"""Bearer-token authentication with scopes.

Every ``/v1`` route needs ``Authorization: Bearer <token>`` with a scope: ``read`` for the reads,
``write`` for the writes, ``admin`` for hard deletes and forced model reloads. Scopes are
hierarchical (``admin`` grants ``write`` and ``read``; ``write`` grants ``read``). Tokens are made
with ``graphrec tokens create`` and stored hashed (:mod:`graphrec.store.tokens`); a revoked or
expired token stops working on the next request (each request looks its token up: one indexed
read, no cache to go stale).

``401`` (with ``WWW-Authenticate: Bearer``) without a valid token, ``403`` when the token lacks
the scope. The token is never logged nor echoed in an error. ``/healthz``, ``/readyz`` and
``/metrics`` are open, for load balancers and scrapers; ``graphrec serve --no-auth`` (loopback
hosts only) opens everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

_bearer = HTTPBearer(auto_error=False, description="A token from `graphrec tokens create` (scopes read, write, admin).")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require(scope: str) -> Any:
    """The FastAPI dependency of a route that needs ``scope``."""

    def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        state = request.app.state
        if not state.auth:
            return
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>' (graphrec tokens create)", headers=_CHALLENGE)
        verify: Callable[["GraphStore", str], Any] = state.verify_token
        info = verify(state.store, credentials.credentials)
        if info is None:
            raise HTTPException(401, "invalid, revoked or expired token", headers=_CHALLENGE)
        if not info.allows(scope):
            raise HTTPException(403, f"token {info.name!r} lacks the {scope!r} scope (it has {', '.join(info.scopes)})")
        request.scope["graphrec.token"] = info  # the access log names it; a hard delete checks admin

    return Depends(check)
