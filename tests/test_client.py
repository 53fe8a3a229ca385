"""``graphrec.client.Client`` against a real ``graphrec serve`` subprocess on SQLite and PostgreSQL
(the harness of tests/test_service.py): every method round-trips and returns its typed model,
equal to the raw HTTP JSON; each error status raises the mapped graphrec exception with the
server's message and never the token; retries of idempotent requests only (connection errors,
503, concurrent writes), measured with counting transports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from graphrec.client import AuthError, Client, ServiceError, ServiceUnavailableError
from graphrec.errors import ConcurrentWriteError, ConflictError, GraphrecError, InputError, NotFoundError, StoreStateError
from graphrec.service import schemas as s
from tests.service_harness import Backend, Server, copy_home, free_port, start_server

pytestmark = pytest.mark.slow


def _raw(server: Server, scope: str, method: str, path: str, **kw: Any) -> Any:
    with server.client(scope) as c:
        r = c.request(method, path, **kw)
    return r.json()


def _server_message(server: Server, scope: str | None, method: str, path: str, **kw: Any) -> str:
    with server.client(scope) as c:
        r = c.request(method, path, **kw)
    assert r.status_code >= 400, r.text
    return str(r.json()["error"]["message"])


def _raises(exc_type: type[GraphrecError], call: Callable[[], Any], tokens: list[str]) -> GraphrecError:
    """The error ``call`` raises: exactly ``exc_type``, no token in its message or repr."""
    with pytest.raises(GraphrecError) as info:
        call()
    err = info.value
    assert type(err) is exc_type, f"{type(err).__name__}: {err}"
    text = str(err) + repr(err) + repr(err.args)
    assert all(tok not in text for tok in tokens) and "\n" not in str(err)
    return err


# -- reads ------------------------------------------------------------------------------------------
def test_every_read_returns_its_model_equal_to_the_raw_json(server: Server, backend: Backend) -> None:
    with Client(server.base, server.tokens["read"]) as gr:
        checks: list[tuple[Any, type[Any], str, dict[str, Any]]] = [
            (gr.recommend("0", k=5), s.Recommendations, "/v1/users/0/recommendations", {"k": 5}),
            (gr.recommend("12", k=10, bot_threshold=0.999), s.Recommendations, "/v1/users/12/recommendations",
             {"k": 10, "bot_threshold": "0.999"}),
            (gr.recommend("12", k=10, bot_threshold="off"), s.Recommendations, "/v1/users/12/recommendations",
             {"k": 10, "bot_threshold": "off"}),
            (gr.recommend("12", k=10, bot_threshold=None), s.Recommendations, "/v1/users/12/recommendations",
             {"k": 10, "bot_threshold": "off"}),
            (gr.similar("0", k=4), s.Similar, "/v1/users/0/similar", {"k": 4}),
            (gr.user_scores("0"), s.UserScores, "/v1/users/0/scores", {}),
            (gr.top_bots(top=3), s.TopBots, "/v1/bots", {"top": 3}),
            (gr.top_anomalies(top=2), s.TopAnomalies, "/v1/anomalies", {"top": 2}),
            (gr.user("0"), s.UserProfile, "/v1/users/0", {}),
            (gr.friends("0"), s.Friends, "/v1/users/0/friends", {}),
            (gr.stats(), s.StoreOverview, "/v1/stats", {}),
        ]
        for got, model, path, params in checks:
            assert type(got) is model, path
            assert got.model_dump(mode="json") == _raw(server, "read", "GET", path, params=params), path
        recs = checks[0][0]
        assert isinstance(recs, s.Recommendations) and len(recs.recommendations) == 5 and recs.model == backend.versions["linkpred"]
        assert all(isinstance(x, s.Suggestion) and x.reasons for x in recs.recommendations)
        assert "0.999" in checks[1][0].bot_filter and checks[2][0].bot_filter == "off" and checks[3][0].bot_filter == "off"

        friend = gr.friends("0").friends[0]
        mutual = gr.mutual_friends("0", friend)
        assert isinstance(mutual, s.MutualFriends) and mutual.users == ["0", friend]
        assert mutual.model_dump() == _raw(server, "read", "GET", f"/v1/users/0/mutual/{friend}")

        models = gr.models()
        assert isinstance(models, s.ServedModelsStatus)
        assert models.served == {"linkpred": backend.versions["linkpred"], "siamese": backend.versions["siamese"]}
        raw_models = _raw(server, "read", "GET", "/v1/models")
        assert models.model_dump(exclude={"last_check"}) == {k: v for k, v in raw_models.items() if k != "last_check"}

        users = [str(u) for u in range(10, 30)] + ["no-such-user"]
        batch = gr.recommend_batch(users, k=5)
        assert isinstance(batch, s.BatchRecommendations) and all(isinstance(x, s.BatchItem) for x in batch.results)
        assert batch.model_dump() == _raw(server, "read", "POST", "/v1/recommendations", json={"users": users, "k": 5})
        assert batch.results[-1].recommendations is None and "unknown user" in (batch.results[-1].error or "")
        off = gr.recommend_batch(iter(["10", "11"]), k=3, bot_threshold="off")
        assert off.bot_filter == "off" and [x.user for x in off.results] == ["10", "11"]


def test_operations_routes(server: Server) -> None:
    with Client(server.base) as anon:  # open routes need no token
        assert anon.healthy() is True
        ready = anon.ready()
        assert isinstance(ready, s.Ready) and ready.status == "ready" and ready.checks["models"]["ok"] is True
        text = anon.metrics()
        assert isinstance(text, str) and "graphrec_http_requests_total" in text
    with Client(f"http://127.0.0.1:{free_port()}") as nowhere:
        assert nowhere.healthy() is False


# -- writes -----------------------------------------------------------------------------------------
def test_every_write_round_trips(server: Server, backend: Backend) -> None:
    tag = backend.dialect[:2]
    with Client(server.base, server.tokens["write"]) as gr, Client(server.base, server.tokens["admin"]) as admin:
        made = gr.create_user(f"c-{tag}", attributes={"city": "Lyon"}, features={"f0": 1.0, "f3": 1.0})
        assert isinstance(made, s.UserProfile) and made.id == f"c-{tag}" and made.attributes == {"city": "Lyon"}
        assert made.features["f0"] == 1.0 and made.is_synthetic is False
        assert made.model_dump() == _raw(server, "read", "GET", f"/v1/users/c-{tag}")

        profile, created = gr.put_user(f"p-{tag}", attributes={"city": "Oslo"}, features={"f1": 1.0})
        assert created is True and isinstance(profile, s.UserProfile) and profile.attributes == {"city": "Oslo"}
        again, created = gr.put_user(f"p-{tag}", attributes={"lang": "no"})
        assert created is False and again.attributes == {"city": "Oslo", "lang": "no"}
        assert again.model_dump() == _raw(server, "read", "GET", f"/v1/users/p-{tag}")

        change = gr.befriend(f"c-{tag}", "3")
        assert change == s.PairChange(users=[f"c-{tag}", "3"], relation="friendship", changed=True)
        assert gr.befriend(f"c-{tag}", "3").changed is False
        assert "3" in gr.friends(f"c-{tag}").friends
        assert gr.unfriend(f"c-{tag}", "3") == s.PairChange(users=[f"c-{tag}", "3"], relation="friendship", changed=True)
        assert gr.unfriend(f"c-{tag}", "3").changed is False

        assert gr.block("3", f"c-{tag}") == s.PairChange(users=["3", f"c-{tag}"], relation="block", changed=True)
        assert gr.block("3", f"c-{tag}").changed is False
        assert gr.unblock("3", f"c-{tag}").changed is True and gr.unblock("3", f"c-{tag}").changed is False

        label = gr.set_label(f"c-{tag}", "bot", source="review")
        assert label == s.Label(user=f"c-{tag}", source="review", label="bot")
        assert gr.set_label(f"c-{tag}", "human").source == "manual"
        assert gr.user(f"c-{tag}").labels == {"review": "bot", "manual": "human"}

        assert gr.delete_user(f"p-{tag}") == s.Deleted(user=f"p-{tag}", deleted=True, hard=False)
        assert gr.user(f"p-{tag}").deleted is True
        assert admin.delete_user(f"c-{tag}", hard=True) == s.Deleted(user=f"c-{tag}", deleted=True, hard=True)
        _raises(NotFoundError, lambda: gr.user(f"c-{tag}"), list(server.tokens.values()))

        reload = admin.reload_models()
        assert isinstance(reload, s.Reload) and isinstance(reload.models, s.ServedModelsStatus) and reload.changes == []


def test_user_ids_are_escaped_into_the_path(server: Server, backend: Backend) -> None:
    tag = backend.dialect[:2]
    odd = [f"a b?{tag}", f"x#y&z=1%{tag}", f"caf\u00e9-{tag}", f"..{tag}"]
    with Client(server.base, server.tokens["write"]) as gr:
        for uid in odd:
            profile, created = gr.put_user(uid)
            assert created is True and profile.id == uid
            assert gr.user(uid).id == uid
            assert gr.befriend(uid, "5").users == [uid, "5"]
            assert gr.mutual_friends(uid, "5").users == [uid, "5"]
            assert gr.set_label(uid, "human", source="x y").source == "x y"
        for bad in ("a/b", "0/friends", ""):  # the server decodes %2F before routing: refused, nothing sent
            assert "URL path" in str(_raises(InputError, lambda: gr.user(bad), []))
            _raises(InputError, lambda: gr.befriend("0", bad), [])


# -- errors -----------------------------------------------------------------------------------------
def test_each_error_status_raises_the_mapped_exception_with_the_servers_message(server: Server) -> None:
    tokens = list(server.tokens.values())
    with Client(server.base, server.tokens["write"]) as gr:
        err = _raises(NotFoundError, lambda: gr.recommend("nobody"), tokens)
        assert str(err) == _server_message(server, "read", "GET", "/v1/users/nobody/recommendations") and "'nobody'" in str(err)
        for call in (lambda: gr.similar("nobody"), lambda: gr.user_scores("nobody"), lambda: gr.user("nobody"),
                     lambda: gr.delete_user("nobody")):
            _raises(NotFoundError, call, tokens)

        err = _raises(InputError, lambda: gr.recommend("0", k=0), tokens)
        assert str(err) == _server_message(server, "read", "GET", "/v1/users/0/recommendations", params={"k": 0}) and "'k'" in str(err)
        err = _raises(InputError, lambda: gr.recommend("0", bot_threshold=2.0), tokens)
        assert "bot_threshold" in str(err)
        assert "itself" in str(_raises(InputError, lambda: gr.befriend("0", "0"), tokens))
        _raises(InputError, lambda: gr.recommend_batch([], k=3), tokens)

        err = _raises(ConflictError, lambda: gr.create_user("0"), tokens)
        assert str(err) == _server_message(server, "write", "POST", "/v1/users", json={"id": "0"}) and "already exists" in str(err)
        assert "synthetic" in str(_raises(ConflictError, lambda: gr.put_user("0", is_synthetic=True), tokens))
        assert isinstance(err, InputError)  # a ConflictError is bad input, as the library has it


def test_auth_errors_name_the_status_and_never_the_token(server: Server) -> None:
    tokens = list(server.tokens.values())
    with Client(server.base) as anon:
        err = _raises(AuthError, lambda: anon.user("0"), tokens)
        assert isinstance(err, AuthError) and err.status == 401 and "missing bearer token" in str(err)
    wrong = "grt_not-a-real-secret-0123456789"
    with Client(server.base, wrong) as bad:
        err = _raises(AuthError, lambda: bad.stats(), [*tokens, wrong])
        assert isinstance(err, AuthError) and err.status == 401
        assert str(err) == _server_message(server, None, "GET", "/v1/stats", headers={"Authorization": f"Bearer {wrong}"})
        assert wrong not in repr(bad)
    with Client(server.base, server.tokens["read"]) as reader:
        err = _raises(AuthError, lambda: reader.befriend("0", "1"), tokens)
        assert isinstance(err, AuthError) and err.status == 403 and "'write' scope" in str(err)
        assert _raises(AuthError, reader.reload_models, tokens).status == 403  # type: ignore[attr-defined]
    with Client(server.base, server.tokens["write"]) as writer:
        err = _raises(AuthError, lambda: writer.delete_user("1", hard=True), tokens)
        assert isinstance(err, AuthError) and err.status == 403 and "admin" in str(err)


def test_a_server_that_is_not_ready_raises_store_state_error(backend: Backend, server: Server, tmp_path: Path) -> None:
    """A second server over the same store whose LATEST link model does not load: 503."""
    home = copy_home(backend.home, tmp_path / "home")
    (home / "models" / "linkpred" / "LATEST").write_text("no-such-version\n", encoding="utf-8")
    broken = start_server(Backend(backend.url, home, backend.versions, backend.dialect), tokens=server.tokens, log_dir=tmp_path,
                          wait_ready=False)
    try:
        with Client(broken.base, broken.tokens["read"]) as gr:
            deadline = time.monotonic() + 90
            while not gr.healthy():
                assert broken.proc.poll() is None and time.monotonic() < deadline, broken.log_text()[-2000:]
                time.sleep(0.1)
            err = _raises(StoreStateError, gr.ready, list(server.tokens.values()))
            with httpx.Client(base_url=broken.base) as raw:
                assert str(err) == raw.get("/readyz").json()["error"]["message"] and "not ready" in str(err)
            err = _raises(StoreStateError, lambda: gr.recommend("0"), list(server.tokens.values()))
            assert str(err) == _server_message(broken, "read", "GET", "/v1/users/0/recommendations")
    finally:
        assert broken.stop() == 0


def test_unmapped_answers_are_service_errors() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/stats":
            return httpx.Response(500, json={"error": {"code": "internal", "message": "internal error (request r1); see the log"}})
        if request.url.path == "/v1/models":
            return httpx.Response(502, text="<html><body>Bad Gateway</body></html>")
        if request.url.path == "/v1/users/0":
            return httpx.Response(200, json={"id": "0"})  # not a UserProfile
        return httpx.Response(404, text="nginx: no such page")

    with Client("http://svc", "tok-secret", transport=httpx.MockTransport(answer)) as gr:
        err = _raises(ServiceError, gr.stats, ["tok-secret"])
        assert isinstance(err, ServiceError) and err.status == 500 and err.code == "internal" and str(err).startswith("internal error")
        err = _raises(ServiceError, gr.models, ["tok-secret"])
        assert isinstance(err, ServiceError) and err.status == 502 and "Bad Gateway" in str(err)
        err = _raises(ServiceError, lambda: gr.user("0"), ["tok-secret"])
        assert "not a UserProfile" in str(err)
        assert _raises(ServiceError, lambda: gr.friends("0"), ["tok-secret"]).status == 404  # type: ignore[attr-defined]


# -- retries ----------------------------------------------------------------------------------------
class _Counting(httpx.HTTPTransport):
    """A real transport that counts the requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.method)
        return super().handle_request(request)


def test_a_get_to_a_dead_port_is_retried_then_unavailable_and_a_post_never_retried() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    transport = _Counting()
    with Client(url, "tok-secret-dead", retries=2, transport=transport) as gr:
        start = time.monotonic()
        err = _raises(ServiceUnavailableError, gr.stats, ["tok-secret-dead"])
        assert transport.calls == ["GET"] * 3 and time.monotonic() - start >= 0.1 + 0.2  # backoff slept between attempts
        assert url in str(err) and "3 attempts" in str(err) and isinstance(err, ServiceError) and err.status is None
        transport.calls.clear()
        _raises(ServiceUnavailableError, lambda: gr.recommend_batch(["0"]), ["tok-secret-dead"])
        _raises(ServiceUnavailableError, lambda: gr.create_user("x"), ["tok-secret-dead"])
        assert transport.calls == ["POST", "POST"]
    with Client(url, retries=0, transport=(t0 := _Counting())) as once:
        _raises(ServiceUnavailableError, lambda: once.user("0"), [])
        assert t0.calls == ["GET"]


def _flaky(failures: int, failure: Callable[[], httpx.Response] | None, ok: dict[str, Any]) -> tuple[httpx.MockTransport, list[str]]:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) <= failures:
            if failure is None:
                raise httpx.ConnectError("connection refused", request=request)
            return failure()
        return httpx.Response(200, json=ok)

    return httpx.MockTransport(answer), calls


_PAIR = {"users": ["a", "b"], "relation": "friendship", "changed": True}
_CONCURRENT = (lambda: httpx.Response(409, json={"error": {"code": "concurrent_write", "message": "another writer; retry"}}))
_NOT_READY = (lambda: httpx.Response(503, json={"error": {"code": "not_ready", "message": "not ready: models: not loaded"}}))


@pytest.mark.parametrize("failure", [None, _CONCURRENT, _NOT_READY], ids=["connect", "concurrent_write", "503"])
def test_idempotent_requests_are_retried_until_they_succeed(failure: Callable[[], httpx.Response] | None) -> None:
    transport, calls = _flaky(2, failure, _PAIR)
    with Client("http://svc", "tok-secret-mock", retries=2, transport=transport) as gr:
        assert gr.befriend("a", "b") == s.PairChange(**_PAIR)
    assert calls == ["PUT"] * 3
    transport, calls = _flaky(2, failure, _PAIR)
    with Client("http://svc", "tok-secret-mock", retries=2, transport=transport) as gr:
        assert gr.unfriend("a", "b").changed is True
    assert calls == ["DELETE"] * 3


def test_retries_give_up_with_the_last_error_and_posts_are_sent_once() -> None:
    transport, calls = _flaky(10, _CONCURRENT, _PAIR)
    with Client("http://svc", "tok-secret-mock", retries=1, transport=transport) as gr:
        assert "another writer" in str(_raises(ConcurrentWriteError, lambda: gr.block("a", "b"), ["tok-secret-mock"]))
        assert calls == ["PUT", "PUT"]
        calls.clear()
        _raises(ConcurrentWriteError, gr.reload_models, [])
        _raises(ConcurrentWriteError, lambda: gr.recommend_batch(["a"]), [])
        assert calls == ["POST", "POST"]
    transport, calls = _flaky(10, _NOT_READY, _PAIR)
    with Client("http://svc", "tok-secret-mock", retries=3, transport=transport) as gr:
        _raises(StoreStateError, gr.ready, [])
        assert calls == ["GET"] * 4
        calls.clear()
        _raises(StoreStateError, lambda: gr.create_user("a"), [])
        assert calls == ["POST"]
    transport, calls = _flaky(10, lambda: httpx.Response(409, json={"error": {"code": "conflict", "message": "exists"}}), _PAIR)
    with Client("http://svc", "tok-secret-mock", retries=3, transport=transport) as gr:
        _raises(ConflictError, lambda: gr.befriend("a", "b"), [])
        assert calls == ["PUT"]  # a conflict is not transient

