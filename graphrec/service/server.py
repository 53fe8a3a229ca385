"""``graphrec serve``: run the HTTP service on uvicorn.

The server process binds the socket and supervises ``workers`` worker processes (uvicorn's
multiprocess mode; one process when ``workers == 1``); each worker builds the app with
:func:`graphrec.service.app.app_from_env` from the environment set here, loads the served models
before it takes requests, and swaps new ``LATEST`` models in the background.

Shutdown: on SIGTERM or SIGINT uvicorn stops accepting connections, lets the requests in flight
finish (up to ``graceful_seconds``), runs the workers' shutdown (watcher stopped, connections
closed) and exits 0.

``--no-auth`` is refused unless the host is a loopback address: an open service on a reachable
interface would hand every user's graph to whoever finds the port.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass

from graphrec.config import DATABASE_URL_ENV, HOME_ENV, Settings
from graphrec.errors import InputError

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
    threads: int = 4

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
            uvicorn.run("graphrec.service.app:app_from_env", factory=True, host=options.host, port=options.port,
                        workers=options.workers, access_log=False, log_config=None, log_level="warning",
                        timeout_graceful_shutdown=options.graceful_seconds, proxy_headers=False, server_header=False)
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
