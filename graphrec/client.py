"""A Python client of the ``graphrec serve`` HTTP service, for backends that talk to the service
without loading the models: it imports only httpx, pydantic (the service's schemas) and
:mod:`graphrec.errors` (no torch, numpy, SQLAlchemy, store or serving code).

One method per route, each returning the typed body of :mod:`graphrec.service.schemas`::

    from graphrec.client import Client
    from graphrec.errors import NotFoundError

    with Client("http://127.0.0.1:8000", token="grt_...", retries=2) as gr:
        recs = gr.recommend("alice", k=10)              # Recommendations
        for s in recs.recommendations:
            print(s.user, s.score, s.reasons)
        profile, created = gr.put_user("bob", attributes={"city": "Lyon"})
        gr.befriend("alice", "bob")                      # PairChange(changed=True)
        try:
            gr.user("nobody")
        except NotFoundError as exc:
            print(exc)                                   # the server's one line

The client keeps one connection pool (keep-alive) for its life; use it as a context manager or
call :meth:`Client.close`. User ids are escaped into the URL path; an empty id or one with a
``/`` is refused (:class:`~graphrec.errors.InputError`, nothing sent): the service decodes ``%2F``
before routing, so such an id would reach another route.

Errors are graphrec's own exceptions, so code that catches what the library raises catches the
same types over HTTP; each message is the server's one line, never the token:

======================================  =========================================================
the service answers                     raised
======================================  =========================================================
404 ``not_found``                       :class:`~graphrec.errors.NotFoundError`
422 ``invalid_input``                   :class:`~graphrec.errors.InputError`
409 ``conflict``                        :class:`~graphrec.errors.ConflictError`
409 ``concurrent_write``                :class:`~graphrec.errors.ConcurrentWriteError` (retry)
503 ``not_ready``                       :class:`~graphrec.errors.StoreStateError`
401, 403                                :class:`AuthError` (``status``)
anything else, or not the error shape   :class:`ServiceError` (``status``; 5xx, a proxy's page)
no connection, no answer in time        :class:`ServiceUnavailableError` (``status`` None)
======================================  =========================================================

``retries=N`` retries an idempotent request (GET, PUT, DELETE) up to N times on a connection
error, a timeout, a 503 or a 409 ``concurrent_write``, sleeping 0.1 s, 0.2 s, 0.4 s, ... (at most
2 s; a ``Retry-After`` header of the server is honoured up to that cap) between attempts. A POST
(batch recommendations, user creation, model reload) is never retried: it is sent once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from graphrec.errors import ConcurrentWriteError, ConflictError, GraphrecError, InputError, NotFoundError, StoreStateError
from graphrec.service import schemas as s

__all__ = ["AuthError", "BotThreshold", "Client", "ServiceError", "ServiceUnavailableError"]

M = TypeVar("M", bound=BaseModel)
#: ``"flagged"`` (the latest bot run's flags), ``"off"`` (no bot filter; None too) or a score in [0, 1]
BotThreshold = str | float | None

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class ServiceError(GraphrecError):
    """The service answered something the client cannot map to one of graphrec's errors (a 5xx,
    a body that is not the error shape, a body that does not fit the expected schema).
    ``status`` is the HTTP status (None when there was no answer), ``code`` the error code when
    the body had one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ServiceUnavailableError(ServiceError):
    """The service could not be reached (connection refused, DNS, timeout): names the URL."""


class AuthError(GraphrecError):
    """401 (no valid token) or 403 (the token lacks the scope); ``status`` says which."""

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _one_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else ""


def _user(user: str) -> str:
    """A user id as one URL path segment (``?``, ``#``, ``%``, spaces escaped). An id with a ``/``
    is refused: the server decodes ``%2F`` before routing, so it would reach another route."""
    text = str(user)
    if not text or "/" in text:
        raise InputError(f"user id {text!r} cannot be sent in a URL path" + (" (it contains '/')" if text else " (empty)"))
    return quote(text, safe="")


def _threshold(value: BotThreshold) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        raise TypeError("bot_threshold must be 'flagged', 'off', None or a number")
    if isinstance(value, (int, float)):
        return repr(float(value))
    return str(value)


class Client:
    """A client of one ``graphrec serve`` (see the module docstring): ``base_url`` such as
    ``http://host:8000``, ``token`` a bearer token of ``graphrec tokens create`` (None for a
    server run with ``--no-auth``), ``timeout`` seconds per request, ``transport`` an httpx
    transport (tests, proxies), ``retries`` the retries of an idempotent request."""

    #: seconds before the first retry; doubled at each further one, capped at MAX_BACKOFF
    BACKOFF = 0.1
    MAX_BACKOFF = 2.0

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None, retries: int = 0) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._token = token
        headers = {"Accept": "application/json", "User-Agent": "graphrec-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout), transport=transport)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, token={'***' if self._token else None})"

    # -- life ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        if self._token and self._token in text:
            text = text.replace(self._token, "***")
        return text

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> httpx.Response:
        """The response of a 2xx; anything else raised as the mapped error, after the retries of an
        idempotent request."""
        attempts = 1 + (self.retries if method in _IDEMPOTENT else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                if not last:
                    self._wait(attempt, None)
                    continue
                raise self._unreachable(exc, attempts) from None
            if response.is_success:
                return response
            error = self._error(response)
            if not last and isinstance(error, (StoreStateError, ConcurrentWriteError)):
                self._wait(attempt, response.headers.get("retry-after"))
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.BACKOFF * (2 ** attempt)
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        time.sleep(min(delay, self.MAX_BACKOFF))

    def _unreachable(self, exc: httpx.TransportError, attempts: int) -> ServiceUnavailableError:
        if isinstance(exc, httpx.TimeoutException):
            why = f"no answer in time ({type(exc).__name__})"
        else:
            why = _one_line(str(exc)) or type(exc).__name__
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return ServiceUnavailableError(self._scrub(f"cannot reach the graphrec service at {self.base_url}{tries}: {why}"))

    def _error(self, response: httpx.Response) -> GraphrecError:
        """The graphrec error for a non-2xx answer (see the module docstring)."""
        status = response.status_code
        code: str | None = None
        message: str | None = None
        try:
            body = response.json()
            detail = body["error"] if isinstance(body, dict) and set(body) == {"error"} else None
            if isinstance(detail, dict) and isinstance(detail.get("code"), str) and isinstance(detail.get("message"), str):
                code, message = detail["code"], _one_line(detail["message"])
        except ValueError:
            pass
        what = f"{response.request.method} {response.request.url.path}"
        if status in (401, 403):
            return AuthError(self._scrub(message or f"HTTP {status} on {what}"), status=status, code=code)
        if message is None or code is None:
            snippet = _one_line(response.text)[:200]
            text = f"HTTP {status} {response.reason_phrase} on {what}" + (f": {snippet}" if snippet else "")
            return ServiceError(self._scrub(text), status=status)
        message = self._scrub(message)
        if status == 404:
            return NotFoundError(message)
        if status == 422:
            return InputError(message)
        if status == 409 and code == "concurrent_write":
            return ConcurrentWriteError(message)
        if status == 409:
            return ConflictError(message)
        if status == 503:
            return StoreStateError(message)
        return ServiceError(message, status=status, code=code)

    def _model(self, model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError) as exc:  # not JSON, or not the schema
            first = _one_line(str(exc))
            raise ServiceError(self._scrub(f"the service's answer to {response.request.method} {response.request.url.path} "
                                           f"is not a {model.__name__}: {first}"), status=response.status_code) from None

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        return self._model(model, self._send("GET", path, params=params or None))

    # -- reads --------------------------------------------------------------------------------
    def recommend(self, user: str, k: int = 20, bot_threshold: BotThreshold = "flagged") -> s.Recommendations:
        """Friend suggestions for ``user`` (``GET /v1/users/{id}/recommendations``)."""
        return self._get(s.Recommendations, f"/v1/users/{_user(user)}/recommendations", k=k, bot_threshold=_threshold(bot_threshold))

    def recommend_batch(self, users: Iterable[str], k: int = 20, bot_threshold: BotThreshold = "flagged") -> s.BatchRecommendations:
        """Suggestions for up to 1,000 users from one model version (``POST /v1/recommendations``);
        an unknown user gets an item with ``error``. A POST: never retried."""
        body = {"users": [str(u) for u in users], "k": k, "bot_threshold": _threshold(bot_threshold)}
        return self._model(s.BatchRecommendations, self._send("POST", "/v1/recommendations", json=body))

    def similar(self, user: str, k: int = 10) -> s.Similar:
        """Users with the most similar learned profile (``GET /v1/users/{id}/similar``)."""
        return self._get(s.Similar, f"/v1/users/{_user(user)}/similar", k=k)

    def user_scores(self, user: str) -> s.UserScores:
        """The user's latest bot and anomaly scores (``GET /v1/users/{id}/scores``)."""
        return self._get(s.UserScores, f"/v1/users/{_user(user)}/scores")

    def top_bots(self, top: int = 20) -> s.TopBots:
        """The likeliest bots of the latest nightly run (``GET /v1/bots``)."""
        return self._get(s.TopBots, "/v1/bots", top=top)

    def top_anomalies(self, top: int = 20) -> s.TopAnomalies:
        """The most anomalous users of the latest nightly run (``GET /v1/anomalies``)."""
        return self._get(s.TopAnomalies, "/v1/anomalies", top=top)

    def user(self, user: str) -> s.UserProfile:
        """A user's profile, degree and labels (``GET /v1/users/{id}``)."""
        return self._get(s.UserProfile, f"/v1/users/{_user(user)}")

    def friends(self, user: str) -> s.Friends:
        """The user's active friends (``GET /v1/users/{id}/friends``)."""
        return self._get(s.Friends, f"/v1/users/{_user(user)}/friends")

    def mutual_friends(self, a: str, b: str) -> s.MutualFriends:
        """The active friends of both (``GET /v1/users/{a}/mutual/{b}``)."""
        return self._get(s.MutualFriends, f"/v1/users/{_user(a)}/mutual/{_user(b)}")

    def stats(self) -> s.StoreOverview:
        """The store's figures and the models' freshness (``GET /v1/stats``)."""
        return self._get(s.StoreOverview, "/v1/stats")

    def models(self) -> s.ServedModelsStatus:
        """The model versions served, what ``LATEST`` names, refusals (``GET /v1/models``)."""
        return self._get(s.ServedModelsStatus, "/v1/models")

    # -- writes -------------------------------------------------------------------------------
    def create_user(self, id: str, *, attributes: s.Attributes | None = None, features: s.Features | None = None,
                    is_synthetic: bool = False) -> s.UserProfile:
        """Create a user (``POST /v1/users``; :class:`~graphrec.errors.ConflictError` when the id
        exists). A POST: never retried (use :meth:`put_user` for an idempotent create)."""
        body = {"id": id, "attributes": attributes, "features": features, "is_synthetic": is_synthetic}
        return self._model(s.UserProfile, self._send("POST", "/v1/users", json=body))

    def put_user(self, user: str, *, attributes: s.Attributes | None = None, features: s.Features | None = None,
                 is_synthetic: bool | None = None) -> tuple[s.UserProfile, bool]:
        """Create the user or merge these attributes and features into it (``PUT /v1/users/{id}``):
        (the profile, True when it was created)."""
        body = {"attributes": attributes, "features": features, "is_synthetic": is_synthetic}
        response = self._send("PUT", f"/v1/users/{_user(user)}", json=body)
        return self._model(s.UserProfile, response), response.status_code == 201

    def delete_user(self, user: str, *, hard: bool = False) -> s.Deleted:
        """Soft-delete the user; ``hard=True`` (admin scope) erases it (``DELETE /v1/users/{id}``)."""
        params = {"hard": "true"} if hard else None
        return self._model(s.Deleted, self._send("DELETE", f"/v1/users/{_user(user)}", params=params))

    def _pair(self, method: str, what: str, a: str, b: str) -> s.PairChange:
        return self._model(s.PairChange, self._send(method, f"/v1/{what}/{_user(a)}/{_user(b)}"))

    def befriend(self, a: str, b: str) -> s.PairChange:
        """Befriend two users (``PUT /v1/friendships/{a}/{b}``; ``changed`` False if they were)."""
        return self._pair("PUT", "friendships", a, b)

    def unfriend(self, a: str, b: str) -> s.PairChange:
        """Unfriend two users (``DELETE /v1/friendships/{a}/{b}``)."""
        return self._pair("DELETE", "friendships", a, b)

    def block(self, blocker: str, blocked: str) -> s.PairChange:
        """``blocker`` blocks ``blocked`` (``PUT /v1/blocks/{blocker}/{blocked}``)."""
        return self._pair("PUT", "blocks", blocker, blocked)

    def unblock(self, blocker: str, blocked: str) -> s.PairChange:
        """Remove a block (``DELETE /v1/blocks/{blocker}/{blocked}``)."""
        return self._pair("DELETE", "blocks", blocker, blocked)

    def set_label(self, user: str, label: str, source: str = "manual") -> s.Label:
        """Set the user's label from ``source`` (``PUT /v1/users/{id}/labels/{source}``)."""
        return self._model(s.Label, self._send("PUT", f"/v1/users/{_user(user)}/labels/{_user(source)}", json={"label": label}))

    def reload_models(self) -> s.Reload:
        """Look for new ``LATEST`` models now (``POST /v1/admin/models/reload``, admin scope)."""
        return self._model(s.Reload, self._send("POST", "/v1/admin/models/reload"))

    # -- operations ---------------------------------------------------------------------------
    def healthy(self) -> bool:
        """Whether the process answers ``GET /healthz`` (False when it cannot be reached or
        answers anything but 200; never raises for that)."""
        try:
            response = self._http.get("/healthz")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def ready(self) -> s.Ready:
        """``GET /readyz``: the readiness checks; :class:`~graphrec.errors.StoreStateError` with
        the failed checks when the server is not ready (503)."""
        return self._get(s.Ready, "/readyz")

    def metrics(self) -> str:
        """The Prometheus text of ``GET /metrics``."""
        return self._send("GET", "/metrics").text
