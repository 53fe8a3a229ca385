"""The ``graphrec`` command line, split by command family: :mod:`~graphrec.cli.data` (schema,
imports, exports, look-ups), :mod:`~graphrec.cli.models` (train, eval, synth, and the served-model
registry ``graphrec models``), :mod:`~graphrec.cli.serving` (recommend, similar, index, score
reads) and :mod:`~graphrec.cli.jobs` (the nightly job). Each command parses its options, calls one
library function and prints.

The root option ``--log-format text|json`` (environment ``GRAPHREC_LOG_FORMAT``) is added to the
group here, beside the families, so every command accepts it: ``graphrec --log-format json train
bots`` writes its log and progress lines as JSON objects (:mod:`graphrec.logs`).
"""

from __future__ import annotations

import click

from graphrec.cli import data, jobs, models, service, serving, tokens  # noqa: F401  (registers the commands)
from graphrec.cli.app import cli, main
from graphrec.logs import LOG_FORMAT_ENV, LOG_FORMATS, set_log_format


def _set_log_format(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    set_log_format(value or "text")  # every invocation sets it (the option's default is text)


if not any(p.name == "log_format" for p in cli.params):
    cli.params.append(click.Option(
        ["--log-format"], type=click.Choice(LOG_FORMATS), envvar=LOG_FORMAT_ENV, expose_value=False, callback=_set_log_format,
        help=f"Log and progress lines on stderr as text or one JSON object per line [env {LOG_FORMAT_ENV}; default text]."))

__all__ = ["cli", "main"]
