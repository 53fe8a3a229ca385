"""The FastAPI application of ``graphrec serve``: routes that parse, call one library function
and return its JSON.

Routes (JSON but for the report page and the metrics; ``/v1`` and ``/reports`` need a bearer token,
:mod:`graphrec.service.auth`):

====================================================  =======  ============================================
route                                                 scope    library function
====================================================  =======  ============================================
``GET /v1/users/{id}/recommendations?k=&bot_threshold=``  read   :func:`~graphrec.serving.served.served_recommendations`
``POST /v1/recommendations`` (a batch of users)       read     :func:`~graphrec.serving.served.served_batch`
``GET /v1/users/{id}/similar?k=``                     read     :func:`~graphrec.serving.served.served_similar`
``GET /v1/users/{id}/scores``                         read     :func:`~graphrec.serving.scores.user_scores`
``GET /v1/bots?top=``                                 read     :func:`~graphrec.serving.scores.top_bots`
``GET /v1/anomalies?top=``                            read     :func:`~graphrec.serving.scores.top_anomalies`
``GET /v1/users/{id}``                                read     :meth:`GraphStore.user_profile`
``GET /v1/users/{id}/friends``                        read     :meth:`GraphStore.neighbours`
``GET /v1/users/{a}/mutual/{b}``                      read     :meth:`GraphStore.mutual_friends`
``GET /v1/stats``                                     read     :func:`~graphrec.serving.freshness.store_overview`
``GET /v1/models``                                    read     :meth:`ServedModels.status`
``POST /v1/users``                                    write    :meth:`GraphStore.add_user` (409 if it exists)
``PUT /v1/users/{id}``                                write    :meth:`GraphStore.put_user` (201 created, 200 updated)
``DELETE /v1/users/{id}[?hard=true]``                 write    :meth:`GraphStore.remove_user` (hard: admin)
``PUT|DELETE /v1/friendships/{a}/{b}``                write    :meth:`GraphStore.add_friendship` / ``remove_friendship``
``PUT|DELETE /v1/blocks/{blocker}/{blocked}``         write    :meth:`GraphStore.block` / ``unblock``
``PUT /v1/users/{id}/labels/{source}``                write    :meth:`GraphStore.set_label`
``POST /v1/admin/models/reload``                      admin    :meth:`ServedModels.refresh`
``GET /reports/latest`` (HTML, 404 before the first)  read     :func:`~graphrec.reports.latest_report_path`
``GET /healthz``, ``/readyz``, ``/metrics``           none     liveness, readiness, Prometheus
====================================================  =======  ============================================

``/reports/latest`` is the page ``graphrec report`` (or ``graphrec eval ... --report``) wrote last,
as ``text/html``; it needs the ``read`` scope like the ``/v1`` reads, because it shows the same
data (flagged users and their explanations, the store's figures). It is served with a content
security policy that allows only its inline styles and inline images: the page never fetches
anything, and a browser would refuse to if it tried.

Every write is one store transaction with the importers' validation; the live filters of the
recommender read the store, so a write shows in the next recommendation. The loaded models are
swapped in the background when ``LATEST`` moves (:mod:`graphrec.serving.served`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import Body, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from graphrec.config import Settings
from graphrec.errors import InputError, mapped_exception_types
from graphrec.service import schemas as s
from graphrec.service.auth import Authenticated, TokenCache, add_security_scheme, openapi_security
from graphrec.service.errors import RejectEncodedSlash, error_response, on_exception, on_http_exception, on_validation_error
from graphrec.service.metrics import Instrumented, registry_for, render, set_served_models, worker_exit

log = logging.getLogger("graphrec.service")

API_VERSION = "v1"
#: environment of a worker process (set by :func:`graphrec.service.server.serve`)
AUTH_ENV = "GRAPHREC_SERVE_AUTH"
WATCH_ENV = "GRAPHREC_SERVE_WATCH_SECONDS"
THREADS_ENV = "GRAPHREC_SERVE_THREADS"
#: The content security policy of ``/reports/latest``: the page's inline CSS and ``data:`` PNGs,
#: nothing else (no scripts, no fetches).
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

UserId = Annotated[str, Path(min_length=1, max_length=255, description="External id of a user.")]
OtherId = Annotated[str, Path(min_length=1, max_length=255, description="External id of the other user.")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorBody, "description": text} for code, text in (
        (401, "No valid bearer token"), (403, "The token lacks the scope"), (404, "Unknown user"),
        (409, "Conflict with the store's state"), (422, "Bad input (names the field)"), (503, "Store unreachable or model missing"))
}


def parse_bot_threshold(value: str, field: str = "bot_threshold") -> float | str | None:
    """``flagged`` (the latest bot run's flags), ``off`` (no bot filter) or a score in [0, 1]."""
    text = value.strip().lower()
    if text == "flagged":
        return "flagged"
    if text in ("off", "none"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"{field} must be 'flagged', 'off' or a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise InputError(f"{field} must be in [0, 1], got {value!r}")
    return number


def create_app(settings: Settings | None = None, *, auth: bool = True, watch_seconds: float = 2.0, threads: int = 2) -> FastAPI:
    """The service over the store and models ``settings`` name. ``auth=False`` opens every route
    (the CLI allows it on loopback hosts only); ``watch_seconds``: how often each worker looks
    for a new ``LATEST`` model (0: only at start and on ``POST /v1/admin/models/reload``);
    ``threads``: how many requests a worker runs at once (the rest wait their turn in arrival
    order). Requests are CPU-bound numpy, FAISS and SQLite work under one interpreter lock: more
    threads than a few only make every request slower (a tail of the latency), while a few keep
    a database round trip (PostgreSQL) from idling the worker."""
    from graphrec.serving.served import ServedModels
    from graphrec.store.store import GraphStore
    from graphrec.store.tokens import verify_token

    store = GraphStore(settings=settings or Settings.resolve())
    served = ServedModels(store, interval=watch_seconds, on_change=set_served_models)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.limiter = anyio.CapacityLimiter(threads)
        # Load the models before this worker takes requests; a store that is down or a model
        # that does not load leaves the worker up but not ready (/readyz says why).
        try:
            await anyio.to_thread.run_sync(served.start)
        except Exception as exc:  # noqa: BLE001
            log.error("models not loaded at start: %s", exc)
        yield
        served.stop()
        worker_exit()
        store.engine.dispose()

    app = FastAPI(title="graphrec", version=API_VERSION, lifespan=lifespan,
                  description="Friend recommendations, similar users, bot and anomaly scores over a SQL-backed social graph.")
    app.state.store = store
    app.state.served = served
    app.state.auth = auth
    app.state.verify_token = verify_token
    app.state.token_cache = TokenCache()
    app.state.metrics = registry_for(store)
    app.add_middleware(RejectEncodedSlash)
    app.add_middleware(Authenticated)  # inside Instrumented: a refused request is measured and logged too
    app.add_middleware(Instrumented)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    # graphrec's errors, driver and file errors are answered where they are raised; anything
    # else reaches the outermost handler (answered 500, traceback to the log).
    for expected in mapped_exception_types():
        app.add_exception_handler(expected, on_exception)
    app.add_exception_handler(Exception, on_exception)

    READ, WRITE, ADMIN = (openapi_security(scope) for scope in ("read", "write", "admin"))
    v1 = f"/{API_VERSION}"

    # -- operations -------------------------------------------------------------------------
    @app.get("/healthz", response_model=s.Health, tags=["operations"])
    async def healthz() -> dict[str, Any]:
        """The process is alive (no store access)."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=s.Ready, tags=["operations"], responses={503: {"model": s.ErrorBody}})
    def readyz() -> Any:
        """The store is reachable, its schema is current, and every trained model that serves
        users is loaded in this worker."""
        from graphrec.serving.readiness import readiness

        ready, checks = readiness(store, served)
        if not ready:
            failed = "; ".join(f"{name}: {c['message']}" for name, c in checks.items() if not c["ok"])
            return error_response(503, "not_ready", f"not ready: {failed}", details=checks)
        return {"status": "ready", "checks": checks}

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    def metrics() -> Response:
        """Prometheus metrics of every worker."""
        return Response(render(app.state.metrics), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/reports/latest", tags=["reports"], response_class=Response, openapi_extra=READ,
             responses={200: {"content": {"text/html": {}}, "description": "The latest report (one self-contained HTML page)"},
                        401: _ERRORS[401], 403: _ERRORS[403], 404: {"model": s.ErrorBody, "description": "No report written yet"}})
    async def latest_report(request: Request) -> Response:
        """The HTML report ``graphrec report`` wrote last (404 before the first); the read scope is
        checked by :class:`~graphrec.service.auth.Authenticated` like every ``/v1`` route's."""
        from graphrec.reports import latest_report_path

        path = latest_report_path(store.settings.home)

        def read() -> str | None:
            try:
                return path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return None

        page = await anyio.to_thread.run_sync(read, limiter=app.state.limiter)
        if page is None:
            return error_response(404, "not_found", "no report yet: write one with `graphrec report` (or `graphrec eval ... --report DIR`)")
        return Response(page, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": REPORT_CSP})

    async def answer(request: Request, work: Callable[[], Any]) -> Response:
        """Run ``work`` (the one library call) in one worker thread (the request was authorized by
        :class:`~graphrec.service.auth.Authenticated` before it got here):
        a store read, numpy and FAISS never block the event loop, and a request costs one thread
        hop. ``work`` returns the JSON body, or (body, status). The body is serialized here,
        once; the response models document it (and the schema tests check it)."""

        result = await anyio.to_thread.run_sync(work, limiter=app.state.limiter)
        body, status = result if isinstance(result, tuple) else (result, 200)
        return Response(json.dumps(body, separators=(",", ":"), default=str), status_code=status, media_type="application/json")

    # -- reads --------------------------------------------------------------------------------
    @app.get(v1 + "/users/{user_id}/recommendations", response_model=s.Recommendations, tags=["recommendations"],
             openapi_extra=READ, responses=_ERRORS)
    async def recommendations(request: Request, user_id: UserId, k: Annotated[int, Query(ge=1, le=1000)] = 20,
                              bot_threshold: Annotated[str, Query(max_length=32, description="'flagged', 'off', or a score in [0, 1].")] = "flagged") -> Any:
        """Friend suggestions with scores, mutual friends and reasons (cold-start users by
        profile similarity), what each filter removed, and the model's freshness."""
        from graphrec.serving.served import served_recommendations

        threshold = parse_bot_threshold(bot_threshold)
        return await answer(request, lambda: served_recommendations(served, user_id, k=k, bot_threshold=threshold).summary())

    @app.post(v1 + "/recommendations", response_model=s.BatchRecommendations, tags=["recommendations"],
              openapi_extra=READ, responses=_ERRORS)
    async def recommendations_batch(request: Request, request_body: Annotated[s.BatchRequest, Body()]) -> Any:
        """Suggestions for up to 1,000 users in one request, all from one model version;
        unknown users get an ``error`` entry."""
        from graphrec.serving.served import served_batch

        threshold = parse_bot_threshold(request_body.bot_threshold, "body field 'bot_threshold'")
        return await answer(request, lambda: served_batch(served, request_body.users, k=request_body.k, bot_threshold=threshold))

    @app.get(v1 + "/users/{user_id}/similar", response_model=s.Similar, tags=["recommendations"], openapi_extra=READ, responses=_ERRORS)
    async def similar(request: Request, user_id: UserId, k: Annotated[int, Query(ge=1, le=1000)] = 10) -> Any:
        """Users with the most similar learned profile embedding (works for users with no friends)."""
        from graphrec.serving.served import served_similar

        return await answer(request, lambda: served_similar(served, user_id, k=k))

    @app.get(v1 + "/users/{user_id}/scores", response_model=s.UserScores, tags=["scores"], openapi_extra=READ, responses=_ERRORS)
    async def user_scores(request: Request, user_id: UserId) -> Any:
        """The user's latest bot and anomaly scores, each with the run it comes from."""
        from graphrec.serving.scores import user_scores as scores_of

        return await answer(request, lambda: scores_of(store, user_id))

    @app.get(v1 + "/bots", response_model=s.TopBots, tags=["scores"], openapi_extra=READ, responses=_ERRORS)
    async def top_bots(request: Request, top: Annotated[int, Query(ge=1, le=10_000)] = 20) -> Any:
        """The likeliest bots of the latest complete nightly run, with their signals."""
        from graphrec.serving.scores import top_bots as bots

        return await answer(request, lambda: bots(store, top=top).as_dict())

    @app.get(v1 + "/anomalies", response_model=s.TopAnomalies, tags=["scores"], openapi_extra=READ, responses=_ERRORS)
    async def top_anomalies(request: Request, top: Annotated[int, Query(ge=1, le=10_000)] = 20) -> Any:
        """The most anomalous users of the latest complete nightly run, with their explanations
        (503 before the first run: live scoring of the whole graph is a batch job, not a request)."""
        from graphrec.serving.scores import top_anomalies as anomalies

        return await answer(request, lambda: anomalies(store, top=top, live_fallback=False).as_dict())

    @app.get(v1 + "/users/{user_id}", response_model=s.UserProfile, tags=["users"], openapi_extra=READ, responses=_ERRORS)
    async def user_profile(request: Request, user_id: UserId) -> Any:
        """A user's profile, degree and labels (deleted users too, marked)."""
        return await answer(request, lambda: store.user_profile(user_id))

    @app.get(v1 + "/users/{user_id}/friends", response_model=s.Friends, tags=["users"], openapi_extra=READ, responses=_ERRORS)
    async def friends(request: Request, user_id: UserId) -> Any:
        """The user's active friends."""

        def work() -> dict[str, Any]:
            found = store.neighbours(user_id)
            return {"user": user_id.strip(), "friends": found, "count": len(found)}

        return await answer(request, work)

    @app.get(v1 + "/users/{user_id}/mutual/{other_id}", response_model=s.MutualFriends, tags=["users"], openapi_extra=READ,
             responses=_ERRORS)
    async def mutual(request: Request, user_id: UserId, other_id: OtherId) -> Any:
        """The active users who are friends of both."""

        def work() -> dict[str, Any]:
            found = store.mutual_friends(user_id, other_id)
            return {"users": [user_id.strip(), other_id.strip()], "mutual_friends": found, "count": len(found)}

        return await answer(request, work)

    @app.get(v1 + "/stats", response_model=s.StoreOverview, tags=["store"], openapi_extra=READ, responses=_ERRORS)
    async def stats(request: Request) -> Any:
        """The store's figures and each served model's freshness (``graphrec stats``)."""
        from graphrec.serving.freshness import store_overview

        return await answer(request, lambda: store_overview(store))

    @app.get(v1 + "/models", response_model=s.ServedModelsStatus, tags=["store"], openapi_extra=READ, responses=_ERRORS)
    async def models(request: Request) -> Any:
        """The model versions this worker serves, what ``LATEST`` names, and refused versions."""
        return await answer(request, served.status)

    # -- writes -------------------------------------------------------------------------------
    @app.post(v1 + "/users", response_model=s.UserProfile, status_code=201, tags=["users"], openapi_extra=WRITE, responses=_ERRORS)
    async def create_user(request: Request, user: Annotated[s.UserCreate, Body()]) -> Any:
        """Create a user (409 when the id exists)."""

        def work() -> tuple[dict[str, Any], int]:
            store.add_user(user.id, attributes=user.attributes, features=user.features, is_synthetic=user.is_synthetic)
            return store.user_profile(user.id), 201

        return await answer(request, work)

    @app.put(v1 + "/users/{user_id}", response_model=s.UserProfile, tags=["users"], openapi_extra=WRITE,
             responses={**_ERRORS, 201: {"model": s.UserProfile, "description": "Created"}})
    async def put_user(request: Request, user_id: UserId, body: Annotated[s.UserPut, Body()]) -> Any:
        """Create the user, or merge these attributes and features into it (idempotent)."""

        def work() -> tuple[dict[str, Any], int]:
            created = store.put_user(user_id, attributes=body.attributes, features=body.features, is_synthetic=body.is_synthetic)
            return store.user_profile(user_id), 201 if created else 200

        return await answer(request, work)

    @app.delete(v1 + "/users/{user_id}", response_model=s.Deleted, tags=["users"], openapi_extra=WRITE, responses=_ERRORS)
    async def delete_user(request: Request, user_id: UserId, hard: bool = False) -> Any:
        """Soft-delete a user (kept for audit, hidden everywhere); ``hard=true`` (admin scope)
        erases it with its friendships and scores."""

        def work() -> dict[str, Any]:
            token = request.scope.get("graphrec.token")
            if hard and app.state.auth and (token is None or not token.allows("admin")):
                raise StarletteHTTPException(403, "a hard delete needs the 'admin' scope")
            store.remove_user(user_id, hard=hard)
            return {"user": user_id.strip(), "deleted": True, "hard": hard}

        return await answer(request, work)

    def pair_routes(relation: str, path: str, add: Callable[[str, str], bool], remove: Callable[[str, str], bool],
                    add_doc: str, remove_doc: str) -> None:
        """``PUT`` (201 created, 200 already so) and ``DELETE`` (``changed`` false when there was
        nothing to remove) of one relation between two users."""

        def body(a: str, b: str, changed: bool) -> dict[str, Any]:
            return {"users": [a.strip(), b.strip()], "relation": relation, "changed": changed}

        async def put(request: Request, user_id: UserId, other_id: OtherId) -> Any:
            def work() -> tuple[dict[str, Any], int]:
                changed = add(user_id, other_id)
                return body(user_id, other_id, changed), 201 if changed else 200

            return await answer(request, work)

        async def delete(request: Request, user_id: UserId, other_id: OtherId) -> Any:
            return await answer(request, lambda: body(user_id, other_id, remove(user_id, other_id)))

        put.__doc__, delete.__doc__ = add_doc, remove_doc
        route = v1 + path + "/{user_id}/{other_id}"
        app.put(route, response_model=s.PairChange, tags=["graph"], openapi_extra=WRITE, name=f"add_{relation}",
                responses={**_ERRORS, 201: {"model": s.PairChange, "description": "Created"}})(put)
        app.delete(route, response_model=s.PairChange, tags=["graph"], openapi_extra=WRITE, name=f"remove_{relation}",
                   responses=_ERRORS)(delete)

    pair_routes("friendship", "/friendships", store.add_friendship, store.remove_friendship,
                "Befriend two users (201; 200 when they already were).", "Unfriend (``changed`` is false when they were not friends).")
    pair_routes("block", "/blocks", store.block, store.unblock,
                "``user_id`` blocks ``other_id`` (201; 200 when already recorded).", "Remove a block (``changed`` is false when there was none).")

    @app.put(v1 + "/users/{user_id}/labels/{source}", response_model=s.Label, tags=["users"], openapi_extra=WRITE, responses=_ERRORS)
    async def set_label(request: Request, user_id: UserId, source: Annotated[str, Path(min_length=1, max_length=32)],
                        body: Annotated[s.LabelPut, Body()]) -> Any:
        """Set the user's label from ``source`` (one label per user and source)."""

        def work() -> dict[str, Any]:
            store.set_label(user_id, body.label, source=source)
            return {"user": user_id.strip(), "source": source, "label": body.label.strip()}

        return await answer(request, work)

    @app.post(v1 + "/admin/models/reload", response_model=s.Reload, tags=["operations"], openapi_extra=ADMIN, responses=_ERRORS)
    async def reload_models(request: Request) -> Any:
        """Look for new ``LATEST`` models now (this worker; the others within their watch interval)."""
        return await answer(request, lambda: {"changes": served.refresh(), "models": served.status()})

    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """The generated schema with the bearer scheme the routes declare."""
        return add_security_scheme(base_openapi())

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The factory each ``graphrec serve`` worker process calls: settings, auth and logging from
    the environment the server set (``GRAPHREC_DATABASE_URL``, ``GRAPHREC_HOME``,
    ``GRAPHREC_SERVE_AUTH``, ``GRAPHREC_LOG_LEVEL``, ``GRAPHREC_LOG_FORMAT``)."""
    from graphrec.logs import DEFAULT_LEVEL, LOG_LEVEL_ENV, configure_logging

    configure_logging(os.environ.get(LOG_LEVEL_ENV, DEFAULT_LEVEL))
    if os.environ.get("GRAPHREC_SERVE_ACCESS_LOG", "1") == "1":
        logging.getLogger("graphrec.access").setLevel(logging.INFO)
        logging.getLogger("graphrec.service").setLevel(logging.INFO)
        logging.getLogger("graphrec.serving.served").setLevel(logging.INFO)
    return create_app(Settings.resolve(), auth=os.environ.get(AUTH_ENV, "1") != "0",
                      watch_seconds=float(os.environ.get(WATCH_ENV, "2")), threads=int(os.environ.get(THREADS_ENV, "2")))
