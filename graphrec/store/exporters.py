"""CSV exports that the importers read back losslessly.

* users: ``id,is_synthetic,<attribute columns (sorted)>,<feature columns (store order)>``.
  Feature values are written as the shortest decimal that round-trips their float32 value
  (integral columns as integers). A feature column whose name collides with an attribute is an
  error rather than a silent loss. When a column is itself named ``id`` (a store imported with
  ``--id-column``), the id column is written as ``_id`` (see :func:`users_id_column`) and the
  export reports it.
* friendships: ``source,target,synthetic`` (each undirected friendship once; ``synthetic`` is
  true when either end is a synthetic user).
* labels: ``id,label,source,is_synthetic``.

Synthetic users are always visible as such. The importers ignore the extra flag columns (edges
read the first two columns, labels their named columns), so exports still read back.

Deleted users (and their friendships and labels) are not exported. Files are written to a
temporary name beside the target and renamed into place, so a failed export never leaves a
half-written file.

These writers run inside the caller's read transaction; the library entry point is
:meth:`graphrec.store.store.GraphStore.export`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from graphrec.errors import GraphrecError
from graphrec.fileio import atomic_output
from graphrec.store.schema import Label, User
from graphrec.store.snapshot import read_snapshot


def _format_column(values: np.ndarray) -> np.ndarray:
    """Shortest text that round-trips each float32 value; integral columns without ``.0``."""
    v = values.astype(np.float32)
    if np.all(v == np.round(v)) and np.all(np.abs(v) < 2**24):
        return v.astype(np.int64).astype(str)
    return v.astype(str)  # numpy prints the shortest repr that round-trips float32


def users_id_column(names: set[str]) -> str:
    """The id column of a users export: ``id``, or, when an attribute or feature is named
    ``id`` (imported with ``--id-column``), the first of ``_id``, ``__id``, ... that is free;
    read it back with ``--id-column`` set to that name."""
    name = "id"
    while name in names:
        name = "_" + name
    return name


def export_users(conn: Connection, path: str | Path, info: dict[str, str] | None = None) -> int:
    """Write active users; returns the number written. ``info["id_column"]`` receives the id
    column's name (:func:`users_id_column`)."""
    snap = read_snapshot(conn)
    rows = conn.execute(select(User.id, User.attributes).where(User.deleted_at.is_(None)).order_by(User.id)).all()
    attrs = [(json.loads(a) if isinstance(a, str) else a) or {} for _, a in rows]
    attr_names = sorted({k for a in attrs for k in a})
    clash = set(attr_names) & set(snap.feature_names)
    if clash:
        raise GraphrecError(f"attribute and feature share the name {sorted(clash)[0]!r}: cannot export losslessly")
    if "is_synthetic" in attr_names or "is_synthetic" in snap.feature_names:
        raise GraphrecError("column name 'is_synthetic' is reserved and cannot be exported")
    id_column = users_id_column(set(attr_names) | set(snap.feature_names))
    if info is not None:
        info["id_column"] = id_column
    columns: dict[str, object] = {
        id_column: snap.external_ids,
        "is_synthetic": np.where(snap.is_synthetic, "true", "false"),
    }
    for name in attr_names:
        columns[name] = [str(a.get(name, "")) for a in attrs]
    for j, name in enumerate(snap.feature_names):
        columns[name] = _format_column(snap.features[:, j])
    frame = pd.DataFrame(columns)
    with atomic_output(path) as fh:
        frame.to_csv(fh, index=False)
    return snap.num_nodes


def export_friendships(conn: Connection, path: str | Path) -> int:
    """Write friendships between active users; returns the number written."""
    snap = read_snapshot(conn)
    edges = snap.edge_array()
    ext = snap.external_ids
    synth = snap.is_synthetic[edges[:, 0]] | snap.is_synthetic[edges[:, 1]]
    frame = pd.DataFrame({"source": ext[edges[:, 0]], "target": ext[edges[:, 1]], "synthetic": np.where(synth, "true", "false")})
    with atomic_output(path) as fh:
        frame.to_csv(fh, index=False)
    return len(frame)


def export_labels(conn: Connection, path: str | Path) -> int:
    """Write every label of every active user, all sources; returns the number written."""
    rows = conn.execute(
        select(User.external_id, Label.label, Label.source, User.is_synthetic)
        .select_from(Label)
        .join(User, User.id == Label.user_id)
        .where(User.deleted_at.is_(None))
        .order_by(User.id, Label.source)
    ).all()
    frame = pd.DataFrame(rows, columns=["id", "label", "source", "is_synthetic"])
    frame["is_synthetic"] = np.where(frame["is_synthetic"].astype(bool), "true", "false")
    with atomic_output(path) as fh:
        frame.to_csv(fh, index=False)
    return len(frame)
