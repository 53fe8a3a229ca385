"""Small file helpers shared by the CLI, exporters and batch jobs (kept free of heavy imports)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from graphrec.errors import InputError


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[IO[str]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    target = Path(path)
    if target.is_dir():
        raise InputError("is a folder, expected a file name", source=target)
    if not target.parent.exists():
        raise InputError("folder does not exist", source=target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_id_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines of a UTF-8 (optionally BOM-prefixed) text file as (line number, text)."""
    if not path.is_file():
        raise InputError("no such file", source=path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", source=path, line=line) from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
