"""The ``graphrec`` command group and what every command shares: settings, the store, output
formatting, logging (``--log-level``), and the mapping of graphrec's errors to one
``error: ...`` line and an exit code.

Every read command takes ``--format table|json``. Exit codes: 0 success, 1 unexpected failure,
2 bad input or usage, 3 unknown user, 4 not ready (database not initialised, older schema,
unreachable, no trained model), 75 a batch job is already running.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from graphrec.config import DATABASE_URL_ENV, HOME_ENV, Settings
from graphrec.errors import expected_error
from graphrec.logs import DEFAULT_LEVEL, LEVELS, LOG_LEVEL_ENV, configure_logging
from graphrec.threads import THREADS_ENV, default_threads

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


def threads_option(what: str = "Torch threads") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--threads N``: torch threads for the command; default one per core this process may
    use (affinity mask and cgroup CPU quota) or ``GRAPHREC_THREADS`` (see :mod:`graphrec.threads`),
    evaluated when the command runs."""
    return click.option("--threads", default=default_threads, show_default=f"one per available core, env {THREADS_ENV}",
                        type=click.IntRange(1), help=f"{what}.")


_LITERAL = re.compile(r"``([^`]+)``")
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain_help(text: str | None) -> str | None:
    """Help text without reStructuredText markup: ``x`` (double backticks) becomes 'x' and
    :role:`target` becomes target, so docstrings read well both in the API docs and in --help."""
    if not text:
        return text
    return _ROLE.sub(r"\1", _LITERAL.sub(r"'\1'", text))


class _Command(click.Command):
    """A command whose help and option help are shown without reStructuredText markup."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_params(self)


def _plain_params(cmd: click.Command) -> None:
    cmd.help = plain_help(cmd.help)
    cmd.short_help = plain_help(cmd.short_help)
    for param in cmd.params:
        if isinstance(param, click.Option):
            param.help = plain_help(param.help)


class _Group(click.Group):
    """Turns graphrec's expected errors (and an unreachable database) into one ``error: ...``
    line and the error's exit code; anything else is a bug and keeps its traceback. Its commands
    and sub-groups show their help without reStructuredText markup."""

    command_class = _Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_params(self)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            err = expected_error(exc)
            if err is None:
                raise
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)


_Group.group_class = _Group


def settings_of(ctx: click.Context) -> Settings:
    """The settings resolved from the global options, the environment and the defaults."""
    settings: Settings = ctx.find_root().obj
    return settings


def open_store(ctx: click.Context, *, create: bool = False) -> "GraphStore":
    """The store the global options name (``create``: initialise an empty database first)."""
    from graphrec.store.store import GraphStore

    store = GraphStore(settings=settings_of(ctx))
    if create and store.initialize_if_empty():
        click.echo(f"initialised empty database {store.engine.url.render_as_string()}", err=True)
    return store


def emit(data: Any, fmt: str, table: Callable[[Any], str] | None = None) -> None:
    """Print ``data`` as one JSON line (``--format json``) or as a table (``table`` renders it;
    default: key/value lines)."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=None, sort_keys=False, default=str))
    else:
        click.echo(table(data) if table else kv_table(data))


def cell(value: Any) -> str:
    """One table cell as a person reads it, never a Python repr: None and empty collections as
    ``-``, floats rounded (4 significant digits, thousands separated above 1,000), lists as
    ``a, b``, dicts as ``k=v, ...``, booleans as ``yes``/``no``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)


def kv_table(data: dict[str, Any]) -> str:
    """``key  value`` lines, keys padded to one width, values as :func:`cell` renders them."""
    width = max((len(k) for k in data), default=0)
    return "\n".join(f"{key.ljust(width)}  {cell(value)}" for key, value in data.items())


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar=DATABASE_URL_ENV, help=f"SQLAlchemy URL [env {DATABASE_URL_ENV}; default sqlite:///graphrec.db]")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar=HOME_ENV, help=f"Models and indexes folder [env {HOME_ENV}]")
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default=DEFAULT_LEVEL, envvar=LOG_LEVEL_ENV,
              show_default=True, help=f"Log records at this level and above go to stderr, one line each [env {LOG_LEVEL_ENV}].")
@click.version_option(package_name="graphrec")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, home: Path | None, log_level: str) -> None:
    """graphrec: friend recommendation and graph analysis over a SQL-backed social graph."""
    configure_logging(log_level)
    ctx.obj = Settings.resolve(database_url, home)


def main() -> None:
    """Console-script entry point."""
    import graphrec.cli  # noqa: F401  (registers every command family)

    cli(prog_name="graphrec")

