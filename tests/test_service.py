"""``graphrec serve`` over real HTTP: uvicorn in a subprocess on a free loopback port, against a
SQLite and a PostgreSQL store with trained models and nightly runs.

Every route, auth and scopes, the error body, writes visible to the next read, a model swap
during a request loop with zero failures, a refused bad artifact, SIGTERM draining a request in
flight, an unreachable store answered 503, two workers sharing their metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from graphrec import artifacts
from graphrec.service.auth import TOKEN_CACHE_SECONDS
from tests.service_harness import Backend, Server, make_backend, make_tokens, start_server

pytestmark = pytest.mark.slow


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]) and body["error"]["code"] == code, body
    assert "Traceback" not in r.text and "File \"" not in r.text
    return str(body["error"]["message"])


# -- reads ----------------------------------------------------------------------------------------
def test_read_routes_answer_what_the_library_answers(server: Server, backend: Backend) -> None:
    from graphrec.serving.recommend import recommend_user
    from graphrec.serving.similar import find_similar

    store = backend.store()
    with server.client("read") as c:
        r = c.get("/v1/users/0/recommendations", params={"k": 5})
        assert r.status_code == 200, r.text
        got = r.json()
        want = recommend_user(store, "0", k=5).summary()
        assert got["model"] == backend.versions["linkpred"] == want["model"]
        assert got["recommendations"] == want["recommendations"] and len(got["recommendations"]) == 5
        assert got["filtered"] == want["filtered"] and got["filtered"]["self"] == 1
        assert all(s["reasons"] for s in got["recommendations"])

        r = c.get("/v1/users/0/similar", params={"k": 4})
        assert r.status_code == 200 and r.json()["similar"] == find_similar(store, "0", 4)["similar"]

        scores = c.get("/v1/users/0/scores").json()
        assert scores["user"] == "0" and scores["scores"]["bot"]["flagged"] is True and scores["scores"]["bot"]["score"] == 1.0
        assert scores["scores"]["bot"]["run_date"] == "2026-11-29" and scores["scores"]["anomaly"]["details"] == {"why": "anomaly test signal 0"}
        late = c.get("/v1/users/239/scores").json()["scores"]["bot"]
        assert late["flagged"] is False and late["score"] == 0.0

        bots = c.get("/v1/bots", params={"top": 3}).json()
        assert [b["user"] for b in bots["bots"]] == ["0", "1", "2"] and all(b["flagged"] for b in bots["bots"])
        anomalies = c.get("/v1/anomalies", params={"top": 2}).json()
        assert anomalies["source"].startswith("run ") and anomalies["anomalies"][0]["why"] == "anomaly test signal 0"

        profile = c.get("/v1/users/0").json()
        assert profile["id"] == "0" and profile["degree"] == len(store.neighbours("0")) and profile["feature_columns"] == 12
        friends = c.get("/v1/users/0/friends").json()
        assert friends["friends"] == store.neighbours("0") and friends["count"] == profile["degree"]
        mutual = c.get(f"/v1/users/0/mutual/{friends['friends'][0]}").json()
        assert mutual["mutual_friends"] == store.mutual_friends("0", friends["friends"][0])
        stats = c.get("/v1/stats").json()
        assert stats["users"] == 240 and stats["friendships"] == store.stats().friendships and stats["models"]
        models = c.get("/v1/models").json()
        assert models["served"] == {"linkpred": backend.versions["linkpred"], "siamese": backend.versions["siamese"]}
        assert models["refused"] == []


def test_bot_filter_drops_the_flagged_accounts_unless_turned_off(server: Server) -> None:
    flagged = {str(i) for i in range(10)}
    users = [str(u) for u in range(10, 80)]
    with server.client("read") as c:
        on = c.post("/v1/recommendations", json={"users": users, "k": 10}).json()
        off = c.post("/v1/recommendations", json={"users": users, "k": 10, "bot_threshold": "off"}).json()
        above = c.get("/v1/users/12/recommendations", params={"bot_threshold": "0.999", "k": 10}).json()
    assert "flagged by bot run" in on["bot_filter"] and off["bot_filter"] == "off" and "0.999" in above["bot_filter"]
    shown_on = {s["user"] for item in on["results"] for s in item["recommendations"]}
    shown_off = {s["user"] for item in off["results"] for s in item["recommendations"]}
    assert not shown_on & flagged and shown_off & flagged
    assert sum(item["filtered"]["bots"] for item in on["results"]) > 0
    assert sum(item["filtered"]["bots"] for item in off["results"]) == 0


def test_batch_serves_the_known_users_and_names_the_unknown(server: Server) -> None:
    with server.client("read") as c:
        r = c.post("/v1/recommendations", json={"users": ["1", "no-such-user", "2"], "k": 3})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["user"] for x in results] == ["1", "no-such-user", "2"]
    assert len(results[0]["recommendations"]) == 3 and "unknown user" in results[1]["error"] and results[1]["recommendations"] is None
    assert results[0]["error"] is None


# -- auth -----------------------------------------------------------------------------------------
def test_auth_needs_a_valid_token_with_the_scope(server: Server, backend: Backend) -> None:
    with server.client(None) as anon:
        r = anon.get("/v1/users/0")
        assert "Bearer" in r.headers["www-authenticate"] and "missing bearer token" in _error(r, 401, "unauthorized")
        _error(anon.get("/v1/users/0", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401, "unauthorized")
        _error(anon.get("/v1/users/0", headers={"Authorization": "Bearer grt_not-a-real-token"}), 401, "unauthorized")
        for open_route in ("/healthz", "/readyz", "/metrics"):
            assert anon.get(open_route).status_code == 200
    with server.client("read") as c:
        assert c.get("/v1/users/0").status_code == 200
        assert "'write' scope" in _error(c.put("/v1/friendships/0/1"), 403, "forbidden")
        _error(c.post("/v1/admin/models/reload"), 403, "forbidden")
    with server.client("write") as c:
        assert c.get("/v1/stats").status_code == 200  # write grants read
        assert c.put("/v1/users/auth-w1", json={}).status_code == 201
        assert "admin" in _error(c.delete("/v1/users/auth-w1", params={"hard": "true"}), 403, "forbidden")
        _error(c.post("/v1/admin/models/reload"), 403, "forbidden")
    with server.client("admin") as c:
        assert c.delete("/v1/users/auth-w1", params={"hard": "true"}).json() == {"user": "auth-w1", "deleted": True, "hard": True}
        _error(c.get("/v1/users/auth-w1"), 404, "not_found")
        assert c.post("/v1/admin/models/reload").status_code == 200


def test_every_v1_route_checks_its_scope_before_anything_else(server: Server) -> None:
    """For every operation of /openapi.json: 401 without a token and 403 with the scope just below
    the one it declares, with parameters and bodies that would not even validate (the check comes
    first), and the scope is the one the issue's table gives each kind of route."""
    spec = httpx.get(server.base + "/openapi.json").json()
    below = {"write": "read", "admin": "write"}
    seen = {"read": 0, "write": 0, "admin": 0}
    for path, methods in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in methods.items():
            scope = op["x-required-scope"]
            seen[scope] += 1
            assert op["security"] == [{"bearerAuth": []}], (method, path)
            url = path.replace("{user_id}", "0").replace("{other_id}", "1").replace("{source}", "s")
            bad = {"params": {"k": "-1", "top": "x"}, "content": b"{not json", "headers": {"content-type": "application/json"}}
            with server.client(None) as anon:
                _error(anon.request(method.upper(), url, **bad), 401, "unauthorized")
            if scope in below:
                with server.client(below[scope]) as weak:
                    assert scope in _error(weak.request(method.upper(), url, **bad), 403, "forbidden"), (method, path)
            assert (scope == "read") == (method == "get" or path == "/v1/recommendations"), (method, path, scope)
    assert seen["read"] >= 11 and seen["write"] >= 8 and seen["admin"] == 1


def test_latest_report_is_served_as_html_to_readers(server: Server, backend: Backend, tmp_path: Path) -> None:
    """/reports/latest: 404 (JSON error) before any report, then the page `graphrec report`
    wrote last, as text/html with a policy that allows only inline styles and images; it shows
    flagged users, so it needs the read scope like the /v1 reads."""
    from graphrec.reports import build_report, latest_report_path

    latest = latest_report_path(backend.home)
    assert not latest.exists()
    with server.client("read") as c:
        assert "graphrec report" in _error(c.get("/reports/latest"), 404, "not_found")
    written = build_report(backend.store(), tmp_path / "report", sections=["store"])
    try:
        page = latest.read_text(encoding="utf-8")
        assert page == Path(written.path).read_text(encoding="utf-8") and '<section id="store">' in page
        with server.client(None) as anon:
            assert "missing bearer token" in _error(anon.get("/reports/latest"), 401, "unauthorized")
            _error(anon.get("/reports/latest", headers={"Authorization": "Bearer grt_not-a-real-token"}), 401, "unauthorized")
        for scope in ("read", "admin"):
            with server.client(scope) as c:
                r = c.get("/reports/latest")
            assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
            assert r.text == page
            assert "default-src 'none'" in r.headers["content-security-policy"] and "img-src data:" in r.headers["content-security-policy"]
    finally:
        latest.unlink()  # the module's other tests share this home


def test_a_revoked_token_stops_working_within_a_second_and_no_secret_is_logged(server: Server, backend: Backend) -> None:
    from graphrec.cli import cli
    from graphrec.store.tokens import create_token

    new = create_token(backend.store(), f"revoke-me-{backend.dialect}", ["read"])
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {new.secret}"}) as c:
        assert c.get("/v1/users/0").status_code == 200
        res = CliRunner().invoke(cli, ["tokens", "revoke", new.info.name], env={"GRAPHREC_DATABASE_URL": backend.url})
        assert res.exit_code == 0, res.output
        revoked = time.monotonic()
        while (r := c.get("/v1/users/0")).status_code == 200:  # a worker trusts a verified token for a second
            assert time.monotonic() - revoked < TOKEN_CACHE_SECONDS + 1.0, "the revoked token still works"
            time.sleep(0.05)
        message = _error(r, 401, "unauthorized")
        assert new.secret not in message
    time.sleep(0.2)  # the access log line of the last request
    log = server.log_text()
    assert new.info.name in log  # the access log names the token...
    assert all(secret not in log for secret in [new.secret, *server.tokens.values()])  # ...never its secret
    assert "Authorization" not in log and "password" not in log.lower()


# -- errors ---------------------------------------------------------------------------------------
def test_bad_requests_get_one_error_shape_naming_the_field(server: Server) -> None:
    with server.client("write") as c:
        assert "'nobody'" in _error(c.get("/v1/users/nobody/recommendations"), 404, "not_found")
        _error(c.get("/v1/users/nobody/similar"), 404, "not_found")
        _error(c.get("/v1/users/nobody/scores"), 404, "not_found")
        assert "'k'" in _error(c.get("/v1/users/0/recommendations", params={"k": 0}), 422, "invalid_input")
        assert "'k'" in _error(c.get("/v1/users/0/similar", params={"k": "many"}), 422, "invalid_input")
        assert "bot_threshold" in _error(c.get("/v1/users/0/recommendations", params={"bot_threshold": "2"}), 422, "invalid_input")
        assert "'id'" in _error(c.post("/v1/users", json={"features": {"f1": 1}}), 422, "invalid_input")
        assert "features" in _error(c.post("/v1/users", json={"id": "x1", "features": {"f1": "high"}}), 422, "invalid_input")
        assert "'f1'" in _error(c.post("/v1/users", content=b'{"id": "x2", "features": {"f1": NaN}}',
                                       headers={"content-type": "application/json"}), 422, "invalid_input")
        assert "overflows float32" in _error(c.put("/v1/users/x3", json={"features": {"f1": 1e308}}), 422, "invalid_input")
        assert "not valid JSON" in _error(c.post("/v1/users", content=b"{oops", headers={"content-type": "application/json"}),
                                          422, "invalid_input")
        assert "'surprise'" in _error(c.put("/v1/users/0", json={"surprise": 1}), 422, "invalid_input")
        assert "itself" in _error(c.put("/v1/friendships/0/0"), 422, "invalid_input")
        assert "already exists" in _error(c.post("/v1/users", json={"id": "0"}), 409, "conflict")
        assert "synthetic" in _error(c.put("/v1/users/0", json={"is_synthetic": True}), 409, "conflict")
        _error(c.get("/v2/nothing"), 404, "not_found")
        assert "encoded slash" in _error(c.get("/v1/users/0%2Ffriends"), 422, "invalid_input")  # never the friends of user 0
        _error(c.post("/v1/stats"), 405, "method_not_allowed")
        assert all(c.get(f"/v1/users/x{i}").status_code == 404 for i in (1, 2, 3))  # nothing half-written


def test_an_unreachable_store_is_503_and_recovers(backend: Backend, tmp_path: Path) -> None:
    """A TCP proxy between the server and PostgreSQL is cut: requests answer 503 (not 500, no
    trace), /readyz says the store is unreachable; when the proxy is back, so is the service.
    The database URL carries a password (the test server trusts any): it appears in no log line
    and no error body."""
    if backend.dialect != "postgresql":
        pytest.skip("cuts a network connection: PostgreSQL only")
    from sqlalchemy.engine import make_url

    password = "s3cret-db-passw0rd"
    target = make_url(backend.url)
    proxy = _Proxy(target.host or "127.0.0.1", target.port or 5432)
    routed = Backend(target.set(port=proxy.port, password=password).render_as_string(hide_password=False), backend.home,
                     backend.versions, backend.dialect)
    srv = start_server(routed, tokens=make_tokens(backend), log_dir=tmp_path)
    bodies: list[str] = []
    try:
        with srv.client("read") as c:
            assert c.get("/v1/users/0/recommendations").status_code == 200
            proxy.cut()
            cut = c.get("/v1/users/0/recommendations")
            bodies.append(cut.text)
            _error(cut, 503, "not_ready")
            ready = c.get("/readyz")
            bodies.append(ready.text)
            assert "store unreachable" in _error(ready, 503, "not_ready")
            assert ready.json()["error"]["details"]["store"]["ok"] is False
            assert c.get("/healthz").status_code == 200
            # a new model while the store is down: it cannot be probed, so it is tried again, never refused
            artifacts.set_latest(backend.home, "linkpred", backend.versions["linkpred2"])
            time.sleep(1.5)  # several looks of the watcher (0.3 s)
            down = c.get("/v1/models")  # its token is not cached any more: it cannot be checked while the store is down
            bodies.append(down.text)
            assert "store unreachable" in _error(c.get("/readyz"), 503, "not_ready")
            _error(down, 503, "not_ready")
            proxy.restore()
            deadline = time.monotonic() + 20
            while c.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.get("/v1/users/0/recommendations").status_code == 200
            while (state := c.get("/v1/models").json())["served"]["linkpred"] != backend.versions["linkpred2"]:
                assert time.monotonic() < deadline + 20, state
                time.sleep(0.2)
            assert state["refused"] == []
    finally:
        artifacts.set_latest(backend.home, "linkpred", backend.versions["linkpred"])
        assert srv.stop() == 0
        proxy.close()
    assert "Traceback" not in srv.log_text()
    assert password not in srv.log_text() and not any(password in b for b in bodies)


class _Proxy:
    """A TCP forwarder on a free loopback port that can cut every connection and refuse new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open = threading.Event()
        self.open.set()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns.clear()

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


# -- writes ---------------------------------------------------------------------------------------
def test_writes_are_visible_to_the_next_read(server: Server) -> None:
    with server.client("write") as c:
        r = c.put("/v1/users/w-new", json={"attributes": {"city": "Lyon"}, "features": {"f0": 1, "f3": 1}})
        assert r.status_code == 201 and r.json()["attributes"] == {"city": "Lyon"}
        revision = c.get("/v1/stats").json()["revision"]
        again = c.put("/v1/users/w-new", json={"attributes": {"city": "Lyon"}, "features": {"f0": 1, "f3": 1}})
        assert again.status_code == 200 and again.json() == r.json() | {"updated_at": again.json()["updated_at"]}
        assert c.get("/v1/stats").json()["revision"] == revision  # an idempotent PUT writes nothing
        cold = c.get("/v1/users/w-new/recommendations", params={"k": 5}).json()
        assert len(cold["recommendations"]) == 5 and all("similar profile" in s["reasons"][0] for s in cold["recommendations"])

        assert c.put("/v1/friendships/w-new/3").json() == {"users": ["w-new", "3"], "relation": "friendship", "changed": True}
        assert c.put("/v1/friendships/w-new/3").status_code == 200  # already friends: changed false
        recs = c.get("/v1/users/w-new/recommendations", params={"k": 5}).json()["recommendations"]
        friends_of_3 = set(c.get("/v1/users/3/friends").json()["friends"])
        assert recs and {s["user"] for s in recs} & friends_of_3 and "3" not in {s["user"] for s in recs}

        top = c.get("/v1/users/3/recommendations", params={"k": 5, "bot_threshold": "off"}).json()["recommendations"][0]["user"]
        assert c.put(f"/v1/blocks/3/{top}").status_code == 201
        blocked = c.get("/v1/users/3/recommendations", params={"k": 5, "bot_threshold": "off"}).json()
        assert top not in {s["user"] for s in blocked["recommendations"]} and blocked["filtered"]["blocked"] >= 1
        assert c.delete(f"/v1/blocks/3/{top}").json()["changed"] is True
        back = c.get("/v1/users/3/recommendations", params={"k": 5, "bot_threshold": "off"}).json()["recommendations"]
        assert back[0]["user"] == top

        assert c.delete(f"/v1/users/{top}").json() == {"user": top, "deleted": True, "hard": False}
        gone = c.get("/v1/users/3/recommendations", params={"k": 5, "bot_threshold": "off"}).json()
        assert top not in {s["user"] for s in gone["recommendations"]} and gone["filtered"]["deleted"] >= 1
        assert c.get(f"/v1/users/{top}").json()["deleted"] is True
        _error(c.get(f"/v1/users/{top}/recommendations"), 404, "not_found")
        _error(c.delete(f"/v1/users/{top}"), 404, "not_found")

        assert c.put("/v1/users/4/labels/review", json={"label": "bot"}).json() == {"user": "4", "source": "review", "label": "bot"}
        assert c.get("/v1/users/4").json()["labels"]["review"] == "bot"
        assert c.delete("/v1/friendships/w-new/3").json()["changed"] is True
        assert "3" not in c.get("/v1/users/w-new/friends").json()["friends"]


# -- operations -------------------------------------------------------------------------------------
def test_metrics_count_requests_per_route_and_show_models_and_revision(server: Server, backend: Backend) -> None:
    with server.client("read") as c:
        for _ in range(3):
            c.get("/v1/users/5/similar")
        c.get("/v1/users/nobody/similar")
        text = c.get("/metrics").text
    assert 'graphrec_http_requests_total{method="GET",route="/v1/users/{user_id}/similar",status="200"}' in text
    assert 'route="/v1/users/{user_id}/similar",status="404"' in text
    buckets = [line for line in text.splitlines() if line.startswith("graphrec_http_request_duration_seconds_bucket{")
               and 'route="/v1/users/{user_id}/similar"' in line and 'le="0.05"' in line]
    statuses = {line.split('status="')[1].split('"')[0] for line in buckets}
    assert {"200", "404"} <= statuses
    assert f'graphrec_served_model_info{{kind="linkpred",version="{backend.versions["linkpred"]}"}} 1.0' in text
    assert f"graphrec_store_revision {float(backend.store().revision())}" in text
    assert "nobody" not in text  # raw paths are not labels


def test_access_log_has_one_json_line_per_request(server: Server) -> None:
    with server.client("read") as c:
        rid = c.get("/v1/users/6", headers={"X-Request-ID": "trace-me-123"}).headers["x-request-id"]
    assert rid == "trace-me-123"
    time.sleep(0.2)
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    hit = [x for x in lines if x.get("logger") == "graphrec.access" and x.get("request_id") == "trace-me-123"]
    assert len(hit) == 1 and hit[0]["route"] == "/v1/users/{user_id}" and hit[0]["status"] == 200 and hit[0]["duration_ms"] > 0


def test_new_model_is_swapped_in_under_traffic_and_a_bad_one_is_refused(server: Server, backend: Backend) -> None:
    v1, v2 = backend.versions["linkpred"], backend.versions["linkpred2"]
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def loop() -> None:
        with server.client("read") as c:
            i = 0
            while not stop.is_set():
                r = c.get(f"/v1/users/{20 + i % 100}/recommendations", params={"k": 5})
                seen.append((r.status_code, r.json().get("model") if r.status_code == 200 else r.text))
                i += 1

    def served(c: httpx.Client) -> dict[str, Any]:
        return dict(c.get("/v1/models").json())

    def wait_for(c: httpx.Client, check: Any) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = served(c)
            if check(state):
                return state
            time.sleep(0.05)
        raise AssertionError(f"not reached in 30 s: {served(c)}")

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        with server.client("read") as c:
            time.sleep(0.5)
            artifacts.set_latest(backend.home, "linkpred", v2)  # what `graphrec train linkpred` does at its end
            wait_for(c, lambda s: s["served"]["linkpred"] == v2)
            n_after_swap = len(seen)
            time.sleep(0.5)
            bad = "20991231T000000-badbad"
            shutil.copytree(artifacts.version_dir(backend.home, "linkpred", v2), artifacts.version_dir(backend.home, "linkpred", bad))
            (artifacts.version_dir(backend.home, "linkpred", bad) / artifacts.ARRAYS).write_bytes(b"\x00garbage" * 64)
            artifacts.set_latest(backend.home, "linkpred", bad)
            state = wait_for(c, lambda s: any(r["version"] == bad for r in s["refused"]))
            assert state["served"]["linkpred"] == v2 and state["latest"]["linkpred"] == bad
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen and all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200][:3]
    models = [m for _, m in seen]
    assert v1 in models and v2 in models and bad not in models and len(seen) > n_after_swap
    assert models[-1] == v2
    assert "refused linkpred model 20991231T000000-badbad" in server.log_text()
    # a garbage Siamese model and a good link model at once: the Siamese one is refused, the link
    # model is served (with the old Siamese model), and recommendations keep working
    siamese = backend.versions["siamese"]
    bad_siamese = "20991231T000000-badsia"
    shutil.copytree(artifacts.version_dir(backend.home, "siamese", siamese), artifacts.version_dir(backend.home, "siamese", bad_siamese))
    (artifacts.version_dir(backend.home, "siamese", bad_siamese) / artifacts.ARRAYS).write_bytes(b"\x00garbage" * 64)
    artifacts.set_latest(backend.home, "siamese", bad_siamese)
    artifacts.set_latest(backend.home, "linkpred", v1)
    with server.client("read") as c:
        state = wait_for(c, lambda s: s["served"]["linkpred"] == v1 and any(r["version"] == bad_siamese for r in s["refused"]))
        assert state["served"]["siamese"] == siamese and [r["kind"] for r in state["refused"]] == ["siamese"]
        assert c.get("/v1/users/0/recommendations").json()["model"] == v1
        assert c.get("/v1/users/0/similar").json()["model"] == siamese
        artifacts.set_latest(backend.home, "siamese", siamese)
        time.sleep(1.0)
        assert c.get("/v1/models").json()["served"] == {"linkpred": v1, "siamese": siamese}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_the_request_in_flight_finish(backend: Backend, tmp_path: Path, workers: int) -> None:
    """One worker (uvicorn in the command's process) or two (the SO_REUSEPORT supervisor)."""
    srv = start_server(backend, tokens=make_tokens(backend), log_dir=tmp_path, workers=workers)
    users = [str(u % 240) for u in range(1000)]
    out: dict[str, Any] = {}

    def batch() -> None:
        with srv.client("read") as c:
            r = c.post("/v1/recommendations", json={"users": users, "k": 20})
            out["status"], out["n"], out["done"] = r.status_code, len(r.json()["results"]), time.monotonic()

    t = threading.Thread(target=batch)
    t.start()
    time.sleep(0.5)
    signalled = time.monotonic()
    srv.proc.terminate()  # SIGTERM
    t.join(60)
    code = srv.proc.wait(60)
    assert out.get("status") == 200 and out["n"] == 1000
    assert out["done"] > signalled, "the batch finished before SIGTERM: nothing was in flight"
    assert code == 0 and "Traceback" not in srv.log_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(srv.base + "/healthz", timeout=2)


def test_two_workers_share_metrics_replace_a_dead_one_and_no_auth_works_on_loopback(service_built: dict[str, Any], tmp_path: Path) -> None:
    b, _ = make_backend("sqlite", service_built, tmp_path)
    srv = start_server(b, "--no-auth", workers=2, log_dir=tmp_path)

    def worker_pids(metrics: str) -> set[str]:
        return {line.split('pid="')[1].split('"')[0] for line in metrics.splitlines() if line.startswith("graphrec_served_model_info")}

    try:
        with httpx.Client(base_url=srv.base) as c:  # no token
            deadline = time.monotonic() + 60  # /readyz answered from one worker; the other may still be loading its models
            while len(worker_pids(c.get("/metrics").text)) < 2:
                assert time.monotonic() < deadline, "the second worker never came up"
                time.sleep(0.2)
            before = next((float(line.rsplit(" ", 1)[1]) for line in c.get("/metrics").text.splitlines()
                           if line.startswith('graphrec_http_requests_total{method="GET",route="/v1/users/{user_id}/similar",status="200"}')), 0.0)
            for u in range(40):
                assert c.get(f"/v1/users/{u}/similar").status_code == 200
            text = c.get("/metrics").text
        count = next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith('graphrec_http_requests_total{method="GET",route="/v1/users/{user_id}/similar",status="200"}'))
        assert count - before == 40  # every worker's requests, whichever worker answered the scrape
        assert len(worker_pids(text)) == 2
        # a worker that dies is replaced; the other keeps answering meanwhile
        pids = [int(p) for p in subprocess.run(["pgrep", "-P", str(srv.proc.pid), "-f", "spawn_main"], capture_output=True,
                                                text=True).stdout.split()]
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=srv.base) as c:
            while True:
                now = {int(p) for p in subprocess.run(["pgrep", "-P", str(srv.proc.pid), "-f", "spawn_main"], capture_output=True,
                                                       text=True).stdout.split()}
                r = c.get("/readyz")
                if len(now) == 2 and pids[0] not in now and r.status_code == 200:
                    break
                assert time.monotonic() < deadline, f"worker not replaced: {now}"
                time.sleep(0.2)
            assert all(c.get(f"/v1/users/{u}").status_code == 200 for u in range(20))
    finally:
        assert srv.stop() == 0


def test_no_auth_is_refused_off_loopback(service_built: dict[str, Any]) -> None:
    built = service_built
    res = subprocess.run([sys.executable, "-c", "from graphrec.cli import main; main()", "serve", "--no-auth", "--host", "0.0.0.0"],
                         capture_output=True, text=True, env={"GRAPHREC_DATABASE_URL": f"sqlite:///{built['db']}", "PATH": ""}, timeout=120)
    assert res.returncode == 2 and res.stderr.strip().startswith("error: --no-auth only with a loopback --host")
    missing = subprocess.run([sys.executable, "-c", "from graphrec.cli import main; main()", "serve"], capture_output=True, text=True,
                             env={"GRAPHREC_DATABASE_URL": f"sqlite:///{built['root'] / 'nothing.db'}", "PATH": ""}, timeout=120)
    assert missing.returncode == 4 and "no database at" in missing.stderr
