"""``graphrec serve``: the HTTP service."""

from __future__ import annotations

import click

from graphrec.cli.app import cli, settings_of


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes (one per core is typical).")
@click.option("--no-auth", is_flag=True, help="Open every route without a token: only with a loopback --host.")
@click.option("--watch-seconds", default=2.0, show_default=True, type=click.FloatRange(0),
              help="How often each worker looks for a new LATEST model (0: only at start and on POST /v1/admin/models/reload).")
@click.option("--graceful-seconds", default=30, show_default=True, type=click.IntRange(0),
              help="On SIGTERM, how long requests in flight may take to finish.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 256),
              help="Requests each worker runs at once; the rest queue in arrival order (more only lengthen the latency tail).")
@click.option("--no-access-log", is_flag=True, help="Do not log one line per request.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, no_auth: bool, watch_seconds: float, graceful_seconds: int,
          threads: int, no_access_log: bool) -> None:
    """Serve recommendations, similar users, scores, users and graph writes over HTTP (FastAPI on
    uvicorn; OpenAPI at /docs and /openapi.json). Routes under /v1 need 'Authorization: Bearer
    TOKEN' (graphrec tokens create); /healthz, /readyz and /metrics are open. Stops gracefully on
    SIGTERM."""
    from graphrec.service.server import ServeOptions, serve as run

    run(settings_of(ctx), ServeOptions(host=host, port=port, workers=workers, auth=not no_auth, watch_seconds=watch_seconds,
                                       graceful_seconds=graceful_seconds, access_log=not no_access_log, threads=threads))
