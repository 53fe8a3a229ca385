"""Versioned model artifacts under ``GRAPHREC_HOME``.

Layout::

    $GRAPHREC_HOME/models/<kind>/<version>/manifest.json   params, seed, metrics, data version
    $GRAPHREC_HOME/models/<kind>/<version>/arrays.safetensors   every numeric array
    $GRAPHREC_HOME/models/<kind>/<version>/<extra files>   e.g. a FAISS index
    $GRAPHREC_HOME/models/<kind>/LATEST                    name of the version to serve
    $GRAPHREC_HOME/models/<kind>/HISTORY                   versions served so far, oldest first

Loading never unpickles: arrays come from safetensors (numpy backend, no torch import), the
manifest is JSON, FAISS indexes are read by FAISS. A version folder is written under a temporary
name and renamed into place, and ``LATEST`` is replaced atomically, so a reader never sees a
half-written model. Folders and files get the modes of ordinary new ones (``0777`` / ``0666``
less the process umask), so a service running as another user can load a model a batch job
trained; run with ``umask 077`` to keep models private. ``HISTORY`` (one version a line, appended by :func:`set_latest`, replaced
atomically) is what :func:`previous_served` and ``graphrec models rollback`` step back through.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphrec.errors import GraphrecError
from graphrec.fileio import atomic_output, current_umask, default_file_mode

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"
LATEST = "LATEST"
HISTORY = "HISTORY"
FORMAT_VERSION = 1


class ArtifactError(GraphrecError):
    """A model artifact is missing, incomplete or does not match what the caller needs."""

    exit_code = 4


@dataclass(frozen=True)
class Artifact:
    """A loaded model version: its manifest, arrays and folder (for extra files)."""

    kind: str
    version: str
    path: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]


def new_version() -> str:
    """Sortable, unique version name: the UTC time to the second, then six hex digits: the
    microseconds (five digits, so two versions made in the same second still sort by time) and
    one random digit (two processes in the same microsecond still differ, 15 times in 16)."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + "-" + f"{now.microsecond:05x}" + uuid.uuid4().hex[:1]


def _kind_dir(home: Path, kind: str) -> Path:
    return Path(home) / "models" / kind


def save(
    home: Path,
    kind: str,
    arrays: dict[str, np.ndarray],
    manifest: dict[str, Any],
    *,
    version: str | None = None,
    extra: Callable[[Path], None] | None = None,
    make_latest: bool = True,
) -> Artifact:
    """Write a new model version (``extra(folder)`` may add files) and optionally serve it."""
    from safetensors.numpy import save_file

    version = version or new_version()
    root = _kind_dir(home, kind)
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.exists():
        raise ArtifactError(f"model {kind} version {version} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide the model from a service running as another user
    try:
        clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        save_file(clean, str(tmp / ARRAYS))
        full = {"format": FORMAT_VERSION, "kind": kind, "version": version, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), **manifest}
        write_manifest(tmp, full)
        if extra is not None:
            extra(tmp)
        for path in tmp.iterdir():  # safetensors (and some writers) create 0600 files
            if path.is_file():
                os.chmod(path, default_file_mode())
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if make_latest:
        set_latest(home, kind, version)
    return Artifact(kind, version, final, full, clean)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace a saved version's manifest atomically (e.g. to record an incremental index sync)."""
    with atomic_output(Path(folder) / MANIFEST) as fh:
        fh.write(json.dumps(manifest, indent=2, sort_keys=True, default=str))


def _replace_text(root: Path, name: str, text: str) -> None:
    with atomic_output(root / name) as fh:
        fh.write(text)


def set_latest(home: Path, kind: str, version: str, *, history: list[str] | None = None) -> None:
    """Point ``LATEST`` at ``version`` (atomic replace) and record it in ``HISTORY`` (appended;
    ``history`` replaces the whole list instead, as a rollback does)."""
    root = _kind_dir(home, kind)
    if not _VERSION_RE.match(version) or not (root / version / MANIFEST).exists():
        raise ArtifactError(f"no {kind} model version {version} under {root}")
    if history is None:
        history = served_history(home, kind)
        current = latest_version(home, kind)
        if current is not None and (not history or history[-1] != current):
            history.append(current)  # a LATEST written before HISTORY existed
        if not history or history[-1] != version:
            history.append(version)
    _replace_text(root, HISTORY, "".join(v + "\n" for v in history))
    _replace_text(root, LATEST, version + "\n")


def served_history(home: Path, kind: str) -> list[str]:
    """The versions of ``kind`` served so far, oldest first (``HISTORY``; empty when none)."""
    marker = _kind_dir(home, kind) / HISTORY
    if not marker.exists():
        return []
    return [line.strip() for line in marker.read_text().splitlines() if line.strip()]


def list_versions(home: Path, kind: str) -> list[str]:
    """Every saved version of ``kind`` (a folder with a manifest), oldest first (versions sort by
    their UTC timestamp)."""
    root = _kind_dir(home, kind)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _VERSION_RE.match(p.name) and (p / MANIFEST).exists())


def list_kinds(home: Path) -> list[str]:
    """The kinds that have at least one saved version under ``home``."""
    root = Path(home) / "models"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and list_versions(home, p.name))


def read_manifest(home: Path, kind: str, version: str) -> dict[str, Any]:
    """A saved version's manifest alone (no arrays); :class:`ArtifactError` when it is missing."""
    folder = _kind_dir(home, kind) / version
    if not _VERSION_RE.match(version) or not (folder / MANIFEST).is_file():
        raise ArtifactError(f"no {kind} model version {version!r} under {_kind_dir(home, kind)}")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"{kind} model {version} is unreadable: {_one_line(exc)}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{kind} model {version}: {MANIFEST} is not a JSON object")
    return manifest


def previous_served(home: Path, kind: str) -> tuple[str, list[str]] | None:
    """The version a rollback serves and the ``HISTORY`` it leaves: the last version served
    before the current one that is still on disk (entries of the current version are dropped
    from the end). Without a history (models served before ``HISTORY`` existed): the newest saved
    version older than the current one. None when there is nothing to go back to."""
    current = latest_version(home, kind)
    saved = set(list_versions(home, kind))
    history = served_history(home, kind)
    while history and history[-1] == current:
        history.pop()
    while history:
        if history[-1] in saved and history[-1] != current:
            return history[-1], history
        history.pop()
    older = [v for v in sorted(saved) if current is None or v < current]
    if older:
        return older[-1], [older[-1]]
    return None


def version_dir(home: Path, kind: str, version: str) -> Path:
    """The folder of one saved version (its manifest and arrays)."""
    return _kind_dir(home, kind) / version


def latest_version(home: Path, kind: str) -> str | None:
    """The served version of ``kind``, or None if none was trained."""
    marker = _kind_dir(home, kind) / LATEST
    if not marker.exists():
        return None
    return marker.read_text().strip() or None


def load(home: Path, kind: str, version: str | None = None, *, train_command: str | None = None) -> Artifact:
    """Load a model version (default: ``LATEST``) without unpickling anything. ``train_command``
    is the command the error names when nothing was trained (the task's ``graphrec train NAME``;
    the kind is not always the command's word: the ``bot`` kind is trained by ``train bots``).

    A missing, unreadable or non-object manifest, a manifest of another kind or format, and a
    truncated, garbage or non-finite ``arrays.safetensors`` are each one :class:`ArtifactError`
    (exit code 4); each task's ``from_artifact`` then checks the manifest fields against the
    arrays before building anything."""
    version = version or latest_version(home, kind)
    if version is None:
        hint = f"run `{train_command}` first" if train_command else "train one first (`graphrec train --help` lists the tasks)"
        raise ArtifactError(f"no trained {kind} model under {Path(home)}: {hint}")
    if not _VERSION_RE.match(version):
        raise ArtifactError(f"invalid model version {version!r}")
    folder = _kind_dir(home, kind) / version
    if not folder.is_dir():
        raise ArtifactError(f"no {kind} model version {version!r} under {_kind_dir(home, kind)}")
    for name in (MANIFEST, ARRAYS):
        if not (folder / name).exists():
            raise ArtifactError(f"{kind} model {version} is incomplete: {name} missing in {folder}")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ArtifactError(f"{kind} model {version}: {MANIFEST} is unreadable ({_one_line(exc)}): retrain the model") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION or manifest.get("kind") != kind:
        raise ArtifactError(f"{folder} is not a {kind} model of format {FORMAT_VERSION}")
    arrays = _load_arrays(folder / ARRAYS, f"{kind} model {version}")
    return Artifact(kind, version, folder, manifest, arrays)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (whitespace runs, newlines included, become one space)."""
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "") if text else type(exc).__name__


def _load_arrays(path: Path, name: str) -> dict[str, np.ndarray]:
    """Every array of a model's safetensors file, refusing a truncated or garbage file (the
    safetensors reader checks the header against the file size and maps the file, so a header
    that claims more than the file holds is refused without allocating it) and float arrays with
    NaN or infinity (no trained model has them: they are corruption), each as an
    :class:`ArtifactError` naming the model and the file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{name}: {path.name} is truncated or not a safetensors file ({_one_line(exc)}): retrain the model") from None
    bad = sorted(k for k, v in arrays.items() if v.dtype.kind in "fc" and not np.isfinite(v).all())
    if bad:
        raise ArtifactError(f"{name}: {path.name} holds NaN or infinite values in {', '.join(bad[:3])}"
                            + (f" and {len(bad) - 3} more arrays" if len(bad) > 3 else "") + ": retrain the model")
    return arrays
