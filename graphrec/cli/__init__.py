"""The ``graphrec`` command line, split by command family: :mod:`~graphrec.cli.data` (schema,
imports, exports, look-ups), :mod:`~graphrec.cli.models` (train, eval, synth),
:mod:`~graphrec.cli.serving` (recommend, similar, index, score reads) and :mod:`~graphrec.cli.jobs`
(the nightly job). Each command parses its options, calls one library function and prints.
"""

from graphrec.cli import data, jobs, models, serving  # noqa: F401  (registers the commands)
from graphrec.cli.app import cli, main

__all__ = ["cli", "main"]
