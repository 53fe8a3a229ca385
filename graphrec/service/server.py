"""``graphrec serve``: run the HTTP service on uvicorn.

With one worker the server runs in this process. With several, this process supervises
``workers`` worker processes, each with its own listening socket on the same port
(``SO_REUSEPORT``: the kernel spreads connections over the workers) and restarts one that dies;
each worker builds the app with
:func:`graphrec.service.app.app_from_env` from the environment set here, loads the served models
before it takes requests, and swaps new ``LATEST`` models in the background.

Shutdown: on SIGTERM or SIGINT every worker stops accepting connections, lets the requests in
flight finish (up to ``graceful_seconds``), runs its shutdown (watcher stopped, connections
closed), and the command exits 0. Send the signal to the main process only (systemd:
``KillMode=mixed``); a worker whose supervisor dies stops by itself.

``--no-auth`` is refused unless the host is a loopback address: an open service on a reachable
interface would hand every user's graph to whoever finds the port.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphrec.config import DATABASE_URL_ENV, HOME_ENV, Settings
from graphrec.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import uvicorn

log = logging.getLogger("graphrec.service")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeOptions:
    """How to run the service (the options of ``graphrec serve``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    auth: bool = True
    watch_seconds: float = 2.0
    graceful_seconds: int = 30
    access_log: bool = True
    threads: int = 2

    def check(self) -> None:
        """:class:`~graphrec.errors.InputError` for options that must not run."""
        if not self.auth and not is_loopback(self.host):
            raise InputError(f"--no-auth only with a loopback --host (127.0.0.1, ::1, localhost), not {self.host!r}: "
                             "create a token with `graphrec tokens create` instead")
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port must be in 0..65535, got {self.port}")
        if self.workers < 1:
            raise InputError(f"--workers must be at least 1, got {self.workers}")
        if self.threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.threads}")
        if self.watch_seconds < 0:
            raise InputError(f"--watch-seconds must be >= 0, got {self.watch_seconds}")


class _Stopped(Exception):
    """SIGTERM or SIGINT after uvicorn's graceful shutdown."""


def _stopped(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def serve(settings: Settings, options: ServeOptions) -> None:
    """Run the service until SIGTERM/SIGINT (blocks). The store must be initialised (a missing
    SQLite file or an outdated schema is a :class:`~graphrec.errors.StoreStateError` before any
    port is bound); a store that is unreachable later makes requests answer 503."""
    import uvicorn

    from graphrec.logs import LOG_LEVEL_ENV, current_log_format
    from graphrec.service.app import AUTH_ENV, THREADS_ENV, WATCH_ENV
    from graphrec.service.metrics import MULTIPROC_ENV
    from graphrec.store.store import GraphStore

    options.check()
    if options.port:
        check_port(options.host, options.port)
    store = GraphStore(settings=settings)
    store.check_schema()  # fail before binding: a mistyped path or an old schema is not a service
    store.engine.dispose()
    env = {DATABASE_URL_ENV: settings.database_url, HOME_ENV: str(settings.home), AUTH_ENV: "1" if options.auth else "0",
           WATCH_ENV: str(options.watch_seconds), THREADS_ENV: str(options.threads), "GRAPHREC_SERVE_ACCESS_LOG": "1" if options.access_log else "0",
           "GRAPHREC_LOG_FORMAT": current_log_format(), LOG_LEVEL_ENV: logging.getLevelName(logging.getLogger().level)}
    # Several workers share their metrics through a folder (prometheus_client's multiprocess
    # mode); one worker runs in this process, whose metrics were created in memory on import.
    metrics_dir = tempfile.mkdtemp(prefix="graphrec-metrics-") if options.workers > 1 else None
    saved = {k: os.environ.get(k) for k in [*env, MULTIPROC_ENV]}
    os.environ.update(env)  # the workers (spawned processes) read their settings from here
    if metrics_dir is not None:
        os.environ[MULTIPROC_ENV] = metrics_dir
    else:
        os.environ.pop(MULTIPROC_ENV, None)
    try:
        log.warning("graphrec serve on http://%s:%d (%d worker%s, auth %s, store %s, home %s)", options.host, options.port,
                    options.workers, "s" if options.workers != 1 else "", "on" if options.auth else "OFF (loopback only)",
                    store.engine.url.render_as_string(hide_password=True), settings.home)
        # uvicorn drains on SIGTERM/SIGINT, then raises the signal again for the handlers it
        # found: ours end the command normally (exit 0) instead of dying by the signal.
        previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if options.workers == 1:
                uvicorn.Server(_uvicorn_config(options.graceful_seconds, host=options.host, port=options.port)).run()
            else:
                _supervise(options)
        except _Stopped:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.warning("graphrec serve stopped")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _uvicorn_config(graceful_seconds: int, **where: Any) -> "uvicorn.Config":
    import uvicorn

    return uvicorn.Config("graphrec.service.app:app_from_env", factory=True, access_log=False, log_config=None, log_level="warning",
                          timeout_graceful_shutdown=graceful_seconds, proxy_headers=False, server_header=False, **where)


def check_port(host: str, port: int) -> None:
    """:class:`~graphrec.errors.InputError` when (host, port) cannot be listened on. The probe
    binds without ``SO_REUSEPORT``, so another server holding the port (another ``graphrec
    serve`` too) is an error, not a partner that would share its traffic."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with ``SO_REUSEPORT``: every worker binds its own, and
    the kernel spreads new connections over them (a shared socket lets whichever worker wakes
    first accept a whole burst of connections, and one worker then does the work of two)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(host: str, port: int, graceful_seconds: int) -> None:
    """One worker process: its own ``SO_REUSEPORT`` socket and uvicorn server. It stops
    gracefully on SIGTERM (from the supervisor) or when the supervisor dies."""
    import multiprocessing as mp
    import threading
    from multiprocessing.connection import wait

    import uvicorn

    os.setsid()  # a terminal's Ctrl-C reaches the supervisor only; it stops the workers once
    parent = mp.parent_process()
    if parent is not None:
        def orphaned() -> None:
            wait([parent.sentinel])
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=orphaned, name="graphrec-parent-watch", daemon=True).start()
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.Server(_uvicorn_config(graceful_seconds)).run(sockets=[reuseport_socket(host, port)])
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _supervise(options: ServeOptions) -> None:
    """Start ``options.workers`` worker processes on one port (``SO_REUSEPORT``), restart one
    that dies, and on SIGTERM/SIGINT stop them all gracefully (each finishes its requests in
    flight), then return. Blocks on the workers' sentinels: no polling."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    from graphrec.service.metrics import mark_dead

    port = options.port
    if port == 0:  # one ephemeral port for every worker
        with socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET) as probe:
            probe.bind((options.host, 0))
            port = int(probe.getsockname()[1])
    check_port(options.host, port)
    ctx = mp.get_context("spawn")

    def start() -> Any:
        proc = ctx.Process(target=_worker, args=(options.host, port, options.graceful_seconds), name="graphrec-serve-worker")
        proc.start()
        return proc

    workers = [start() for _ in range(options.workers)]
    try:
        while True:
            ended = wait([w.sentinel for w in workers])
            for i, w in enumerate(workers):
                if w.sentinel in ended:
                    w.join()
                    log.error("worker %d exited with %s: starting another in a second", w.pid, w.exitcode)
                    mark_dead(int(w.pid or 0))
                    time.sleep(1.0)  # a worker that cannot start does not spin
                    workers[i] = start()
    except _Stopped:
        for w in workers:
            if w.is_alive():
                os.kill(w.pid, signal.SIGTERM)
        deadline = options.graceful_seconds + 10
        for w in workers:
            w.join(deadline)
            if w.is_alive():
                w.kill()
                w.join()
        raise
