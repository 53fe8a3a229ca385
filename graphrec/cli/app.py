"""The ``graphrec`` command group and what every command shares: settings, the store, output
formatting, logging (``--log-level``), and the mapping of graphrec's errors to one
``error: ...`` line and an exit code.

Every read command takes ``--format table|json``. Exit codes: 0 success, 1 unexpected failure,
2 bad input or usage (also a file or folder that cannot be used as given, a value the database
rejects), 3 unknown user, 4 not ready (database not initialised, older or newer schema, unreachable,
read-only, not a SQLite database, missing driver, no trained model, an unreadable model file),
75 a batch job is already running or a concurrent writer conflicted (nothing written: retry).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from graphrec.config import DATABASE_URL_ENV, HOME_ENV, Settings
from graphrec.errors import expected_error
from graphrec.logs import DEFAULT_LEVEL, LEVELS, LOG_FORMATS, LOG_LEVEL_ENV, configure_logging, current_log_format, error_line, set_log_format
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
    """A command whose help and option help are shown without reStructuredText markup. A command's
    own ``--log-format`` (the nightly job's) sets the format of every log and error line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_params(self)

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.params.get("log_format") in LOG_FORMATS:
            set_log_format(ctx.params["log_format"])
        return super().invoke(ctx)


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
            fail(exc)


def fail(exc: Exception) -> NoReturn:
    """The one place the command line turns an exception into its end: graphrec's errors, database
    driver, file-system and safetensors errors (:func:`graphrec.errors.expected_error`) print one
    ``error: ...`` line (a JSON object with ``--log-format json``) and exit with the documented
    code. Anything else is a bug: its traceback is printed (as one JSON object with ``exc`` in
    JSON mode, exit 1). Engines hide SQL parameter values (``hide_parameters``), so neither shows
    user data."""
    err = expected_error(exc)
    if err is None:
        if current_log_format() != "json":
            raise exc
        click.echo(error_line(f"unexpected error (a bug): {type(exc).__name__}: {exc}".splitlines()[0], 1, exc), err=True)
        sys.exit(1)
    click.echo(error_line(str(err), err.exit_code), err=True)
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
    ``a, b`` (a list of more than 8 numbers, such as a per-epoch loss, as ``first -> last (n values)``),
    dicts as ``k=v, ...``, booleans as ``yes``/``no``."""
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
    if isinstance(value, (list, tuple)) and len(value) > 8 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return f"{cell(value[0])} -> {cell(value[-1])} ({len(value)} values)"  # a per-epoch series: where it started and ended
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


def engine_options(fn: Any) -> Any:
    """``--engine``, ``--ray-address`` and ``--workers``: where a batch command runs."""
    fn = click.option("--workers", type=click.IntRange(1), help="With --engine ray: how many Ray workers run the batch at once (and CPUs of a local Ray cluster) [default: 2].")(fn)
    fn = click.option("--ray-address", help="With --engine ray: the Ray cluster to join (e.g. ray://head:10001 or auto) [default: start a local one].")(fn)
    return click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                        help="Run in this process (local) or as Ray stages (ray; needs pip install 'graphrec[distributed]').")(fn)


def ray_options(engine: str, ray_address: str | None, workers: int | None) -> Any:
    """The :class:`~graphrec.distributed.engine.RayOptions` of ``--engine ray`` (None for local);
    ``--ray-address`` or ``--workers`` without ``--engine ray`` is an error, not ignored."""
    from graphrec.errors import InputError

    if engine != "ray":
        if ray_address is not None or workers is not None:
            raise InputError("--ray-address and --workers go with --engine ray")
        return None
    from graphrec.distributed.engine import RayOptions

    workers = 2 if workers is None else workers
    return RayOptions(address=ray_address, num_cpus=workers, workers=workers)  # a local cluster: one CPU per worker
