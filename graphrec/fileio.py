"""Small file helpers shared by the CLI, exporters and batch jobs (kept free of heavy imports).

File modes: files graphrec writes get the mode an ordinary ``open()`` would give them, ``0666``
less the process umask (``0644`` under the usual umask 022, ``0600`` under 077), so a service
running as another user can read an export when the umask allows it. Set a stricter umask
(``umask 077``) to keep outputs private. Outputs are written to a temporary file, fsynced and
renamed over the target (:func:`atomic_output`); a target that is not a regular file (a FIFO,
``/dev/null``, a folder) is refused, never replaced.
"""

from __future__ import annotations

import contextlib
import os
import stat
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


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def output_target(path: str | Path) -> Path:
    """The file an output to ``path`` replaces, checked before anything is computed or written:
    :class:`InputError` (exit 2) when ``path`` exists and is not a regular file (a folder, a FIFO,
    a device such as ``/dev/null``, a socket: replacing it with a regular file would break it) or
    when its folder does not exist. A symbolic link to a regular file is followed: the file it
    points to is replaced and the link stays."""
    target = Path(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InputError(f"cannot use this output path: {exc.strerror or exc}", source=target) from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            kind = _kind_of(st.st_mode)
            raise InputError(f"is {kind}, not a regular file: refusing to replace it (name a new or regular file)", source=target)
        target = Path(os.path.realpath(target))
    if not target.parent.is_dir():
        raise InputError("folder does not exist", source=target.parent)
    return target


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[IO[str]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds.

    One policy for every file graphrec writes: the file gets the mode of an ordinary new file
    (``0666`` less the umask, see the module docstring), not the private ``0600`` of the
    temporary file it starts as, and it is flushed to disk (``fsync``) before the atomic rename
    (and the folder after it), so a crash leaves either the old file or the complete new one.
    A target that exists and is not a regular file, a missing folder and a folder graphrec may
    not write in (permissions, read-only file system) are one :class:`InputError` line (exit 2)
    naming the path (:func:`output_target`); nothing is written then."""
    target = output_target(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputError(f"cannot write in this folder: {exc.strerror or exc}", source=target.parent) from None
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse a folder fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
