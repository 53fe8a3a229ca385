"""The ``graphrec`` command group and what every command shares: settings, the store, output
formatting, and the mapping of graphrec's errors to one ``error: ...`` line and an exit code.

Every read command takes ``--format table|json``. Exit codes: 0 success, 1 unexpected failure,
2 bad input or usage, 3 unknown user, 4 not ready (database not initialised, older schema,
unreachable, no trained model), 75 a batch job is already running.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from graphrec.config import DATABASE_URL_ENV, HOME_ENV, Settings
from graphrec.errors import GraphrecError

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


class _Group(click.Group):
    """Turns graphrec's expected errors into one ``error: ...`` line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GraphrecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:  # database unreachable and similar: no traceback for operators
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
                click.echo(f"error: database error: {first}", err=True)
                sys.exit(4)
            raise


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


def open_store(ctx: click.Context, *, create: bool = False) -> Any:
    from graphrec.store.store import GraphStore

    store = GraphStore(settings=settings_of(ctx))
    if create and store.initialize_if_empty():
        click.echo(f"initialised empty database {store.engine.url.render_as_string()}", err=True)
    return store


def emit(data: Any, fmt: str, table: Callable[[Any], str] | None = None) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=None, sort_keys=False, default=str))
    else:
        click.echo(table(data) if table else kv_table(data))


def kv_table(data: dict[str, Any]) -> str:
    width = max((len(k) for k in data), default=0)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        lines.append(f"{key.ljust(width)}  {value}")
    return "\n".join(lines)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar=DATABASE_URL_ENV, help=f"SQLAlchemy URL [env {DATABASE_URL_ENV}; default sqlite:///graphrec.db]")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar=HOME_ENV, help=f"Models and indexes folder [env {HOME_ENV}]")
@click.version_option(package_name="graphrec")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, home: Path | None) -> None:
    """graphrec: friend recommendation and graph analysis over a SQL-backed social graph."""
    ctx.obj = Settings.resolve(database_url, home)


def main() -> None:
    """Console-script entry point."""
    import graphrec.cli  # noqa: F401  (registers every command family)

    cli(prog_name="graphrec")

