"""Small file helpers shared by the CLI, exporters and batch jobs (kept free of heavy imports).

File modes: files graphrec writes get the mode an ordinary ``open()`` would give them, ``0666``
less the process umask (``0644`` under the usual umask 022, ``0600`` under 077), so a service
running as another user can read an export when the umask allows it. Set a stricter umask
(``umask 077``) to keep outputs private.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from graphrec.errors import InputError


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read from ``/proc/self/status`` where Linux provides it; elsewhere by
    setting and restoring it under a lock)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[IO[str]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds.

    The file gets the mode of an ordinary new file (``0666`` less the umask, see the module
    docstring), not the private ``0600`` of the temporary file it starts as."""
    target = Path(path)
    if target.is_dir():
        raise InputError("is a folder, expected a file name", source=target)
    if not target.parent.exists():
        raise InputError("folder does not exist", source=target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, default_file_mode())
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
