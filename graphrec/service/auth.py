"""Bearer-token authentication with scopes.

Every ``/v1`` route and ``/reports/latest`` need ``Authorization: Bearer <token>`` with a scope: ``read`` for the reads,
``write`` for the writes, ``admin`` for hard deletes and forced model reloads. Scopes are
hierarchical (``admin`` grants ``write`` and ``read``; ``write`` grants ``read``). Tokens are made
with ``graphrec tokens create`` and stored hashed (:mod:`graphrec.store.tokens`); a revoked or
expired token stops working within a second on every worker (:class:`TokenCache`).

The check is an ASGI middleware (:class:`Authenticated`) that runs before routing validates
anything: ``401`` (with ``WWW-Authenticate: Bearer``) without a valid token, ``403`` when the
token lacks the scope the route declares, whatever the parameters or the body. The token is never
logged nor echoed in an error. ``/healthz``, ``/readyz``, ``/metrics`` (for load balancers and
scrapers) and the API description (``/openapi.json``, ``/docs``, ``/redoc``) are open;
``graphrec serve --no-auth`` (loopback hosts only) opens everything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphrec.service.errors import error_response, status_of

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

    def cached(self, secret: str) -> Any:
        """The token info of ``secret`` if verified less than :data:`TOKEN_CACHE_SECONDS` ago
        and still active (no I/O), else None."""
        from graphrec.store.tokens import hash_secret

        hit = self._entries.get(hash_secret(secret))
        if hit is not None and time.monotonic() < hit[0] and hit[1].active:
            return hit[1]
        return None

    def verify(self, store: "GraphStore", secret: str, verify: Callable[["GraphStore", str], Any]) -> Any:
        """The active token of ``secret`` or None: from the cache, else from the store (I/O)."""
        from graphrec.store.tokens import hash_secret

        info = self.cached(secret)
        if info is not None:
            return info
        key = hash_secret(secret)
        now = time.monotonic()
        info = verify(store, secret)
        with self._lock:
            if info is None:
                self._entries.pop(key, None)
            else:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self.ttl, info)
        return info


def _bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def required_scope(app: Any, scope: dict[str, Any]) -> str:
    """The scope the route matching this request declares (``x-required-scope``); ``read`` for a
    path under ``/v1`` that matches no route (it still needs a valid token: a 404 is not given to
    strangers)."""
    from starlette.routing import Match

    partial = None
    for route in app.router.routes:
        match, _ = route.matches(scope)
        extra = getattr(route, "openapi_extra", None) or {}
        if match == Match.FULL:  # the route that will answer (path and method)
            scope["route"] = route  # a refused request is counted under its route in the metrics
            return str(extra.get("x-required-scope", "read"))
        if match == Match.PARTIAL and partial is None:  # the path with another method: the router answers 405
            partial = str(extra.get("x-required-scope", "read"))
    return partial or "read"


#: the path prefixes whose requests need a token: the API and the report page (it names flagged users)
GUARDED_PREFIXES = ("/v1", "/reports")


def guarded(path: str) -> bool:
    """Whether a request to ``path`` needs a bearer token (under one of :data:`GUARDED_PREFIXES`)."""
    return any(path == p or path.startswith(p + "/") for p in GUARDED_PREFIXES)


class Authenticated:
    """ASGI middleware: every request under ``/v1`` or ``/reports`` needs a bearer token with the scope its route
    declares, checked before anything else looks at the request (its parameters, its body):
    ``401`` without a valid token, ``403`` without the scope. A token is looked up in the store at
    most once a second (:class:`TokenCache`), in a worker thread; the token's
    :class:`~graphrec.store.tokens.TokenInfo` is kept on the request for the access log and for
    routes that need more (a hard delete needs ``admin``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        state = app.state
        if not state.auth:
            await self.app(scope, receive, send)
            return
        secret = _bearer_token(scope.get("headers", []))
        info = None
        if secret is not None:
            info = state.token_cache.cached(secret)
            if info is None:
                import anyio

                try:
                    info = await anyio.to_thread.run_sync(state.token_cache.verify, state.store, secret, state.verify_token)
                except Exception as exc:  # noqa: BLE001 - the store cannot verify it: answered like any route's error
                    mapped = status_of(exc)
                    status, code, message = mapped if mapped is not None else (500, "internal", "internal error: the token could not be checked")
                    await error_response(status, code, message)(scope, receive, send)
                    return
        needed = required_scope(app, scope)
        if secret is None:
            response = error_response(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <token>' (graphrec tokens create)",
                                      headers=_CHALLENGE)
        elif info is None:
            response = error_response(401, "unauthorized", "invalid, revoked or expired token", headers=_CHALLENGE)
        elif not info.allows(needed):
            scope["graphrec.token"] = info
            response = error_response(403, "forbidden", f"token {info.name!r} lacks the {needed!r} scope (it has {', '.join(info.scopes)})")
        else:
            scope["graphrec.token"] = info  # the access log names it; a hard delete checks admin
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
