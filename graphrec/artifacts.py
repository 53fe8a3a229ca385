"""Versioned model artifacts under ``GRAPHREC_HOME``.

Layout::

    $GRAPHREC_HOME/models/<kind>/<version>/manifest.json   params, seed, metrics, data version
    $GRAPHREC_HOME/models/<kind>/<version>/arrays.safetensors   every numeric array
    $GRAPHREC_HOME/models/<kind>/<version>/<extra files>   e.g. a FAISS index
    $GRAPHREC_HOME/models/<kind>/LATEST                    name of the version to serve

Loading never unpickles: arrays come from safetensors (numpy backend, no torch import), the
manifest is JSON, FAISS indexes are read by FAISS. A version folder is written under a temporary
name and renamed into place, and ``LATEST`` is replaced atomically, so a reader never sees a
half-written model.
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

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"
LATEST = "LATEST"
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
    """Sortable, unique version name: UTC timestamp plus a short random suffix."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


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
    try:
        clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        save_file(clean, str(tmp / ARRAYS))
        full = {"format": FORMAT_VERSION, "kind": kind, "version": version, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), **manifest}
        write_manifest(tmp, full)
        if extra is not None:
            extra(tmp)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if make_latest:
        set_latest(home, kind, version)
    return Artifact(kind, version, final, full, clean)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace a saved version's manifest atomically (e.g. to record an incremental index sync)."""
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    os.replace(tmp, Path(folder) / MANIFEST)


def set_latest(home: Path, kind: str, version: str) -> None:
    """Point ``LATEST`` at ``version`` (atomic replace)."""
    root = _kind_dir(home, kind)
    if not (root / version / MANIFEST).exists():
        raise ArtifactError(f"no {kind} model version {version} under {root}")
    fd, tmp = tempfile.mkstemp(prefix=".LATEST.", dir=root)
    with os.fdopen(fd, "w") as fh:
        fh.write(version + "\n")
    os.replace(tmp, root / LATEST)


def latest_version(home: Path, kind: str) -> str | None:
    """The served version of ``kind``, or None if none was trained."""
    marker = _kind_dir(home, kind) / LATEST
    if not marker.exists():
        return None
    return marker.read_text().strip() or None


def load(home: Path, kind: str, version: str | None = None) -> Artifact:
    """Load a model version (default: ``LATEST``) without unpickling anything."""
    from safetensors.numpy import load_file

    version = version or latest_version(home, kind)
    if version is None:
        raise ArtifactError(f"no trained {kind} model under {Path(home)}: run `graphrec train {kind}` first")
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
        arrays = load_file(str(folder / ARRAYS))
    except (json.JSONDecodeError, OSError, ValueError) as exc:
        raise ArtifactError(f"{kind} model {version} is unreadable: {exc}") from None
    if manifest.get("format") != FORMAT_VERSION or manifest.get("kind") != kind:
        raise ArtifactError(f"{folder} is not a {kind} model of format {FORMAT_VERSION}")
    return Artifact(kind, version, folder, manifest, arrays)
