"""Writes validated batches (from :mod:`graphrec.store.importers` or the dataset loaders) into the
store inside the caller's write transaction. Idempotent: rows already present are left alone, and
an existing user is only rewritten when the batch changes it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from graphrec.errors import InputError
from graphrec.store import bulk
from graphrec.store.importers import SHOWN_PROBLEMS, EdgeBatch, LabelBatch, UserBatch
from graphrec.store.report import ImportReport
from graphrec.store.schema import Circle, CircleMember, FeatureColumn, Label, User, utcnow
from graphrec.store.vectors import decode_rows, encode_rows

#: Rows per encode/insert chunk for users (bounds memory for wide feature matrices).
USER_CHUNK = 50_000


Progress = Callable[[int], None]


def _noop(_: int) -> None:
    return None


def ensure_feature_columns(conn: Connection, names: Sequence[str], *, allow_new: bool = False,
                           source: str | None = None) -> tuple[np.ndarray, int, int]:
    """Positions of ``names`` in the feature space (appending new names); returns
    (positions, total column count, number added).

    A new column widens *every* user's feature vector, and models trained on the old width then
    refuse to load or mismatch, so new names are an :class:`~graphrec.errors.InputError` (naming
    them; nothing written) unless ``allow_new`` or the store has no feature column yet (the first
    import defines the feature space). ``source`` names the input in that error."""
    rows = conn.execute(select(FeatureColumn.name, FeatureColumn.position)).all()
    known = {name: pos for name, pos in rows}
    unknown = [n for n in dict.fromkeys(names) if n not in known]
    if unknown and known and not allow_new:
        shown = ", ".join(repr(n) for n in unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise InputError(
            f"{len(unknown)} new feature column(s) {shown}: the store has {len(known)} feature columns and adding one "
            "widens every user's feature vector (trained models must then be retrained); pass --add-columns "
            "(library: allow_new_columns=True) to add them",
            source=source,
        )
    nxt = max(known.values(), default=-1) + 1
    new_rows = []
    for name in names:
        if name not in known:
            known[name] = nxt
            new_rows.append({"position": nxt, "name": name, "created_at": utcnow()})
            nxt += 1
    if new_rows:
        conn.execute(insert(FeatureColumn), new_rows)
    return np.array([known[n] for n in names], dtype=np.int64), nxt, len(new_rows)


def write_users(conn: Connection, batch: UserBatch, report: ImportReport, progress: Progress = _noop, *,
                allow_new_columns: bool = False, allow_synthetic_change: bool = False) -> np.ndarray:
    """Create or update the batch's users; returns their internal ids (aligned with the batch).
    Feature columns the store lacks need ``allow_new_columns`` (see :func:`ensure_feature_columns`).

    Refused (:class:`~graphrec.errors.InputError`, nothing written): an attribute column that is
    a feature column of the store or a feature column that is an attribute of some user (the
    store could no longer be exported), and, unless ``allow_synthetic_change``, a batch that
    marks an existing real user synthetic (``synth purge`` would delete that user)."""
    known_features = set(conn.execute(select(FeatureColumn.name)).scalars())
    _check_name_clashes(conn, batch, known_features)
    positions, dim, added = ensure_feature_columns(conn, batch.feature_names, allow_new=allow_new_columns, source=batch.source)
    report.feature_columns_added += added
    ids = bulk.lookup_user_ids(conn, batch.external_ids)
    if batch.is_synthetic is not None and not allow_synthetic_change:
        _refuse_real_to_synthetic(conn, batch, ids)
    new = np.flatnonzero(ids < 0)
    now = utcnow()
    for start in range(0, new.size, USER_CHUNK):
        chunk = new[start : start + USER_CHUNK]
        blobs = _encode(batch.features[chunk], positions, dim) if batch.feature_names else [None] * chunk.size
        created = bulk.insert_users(
            conn,
            [batch.external_ids[i] for i in chunk],
            attributes=[batch.attributes[i] or None for i in chunk],
            features=blobs,
            is_synthetic=None if batch.is_synthetic is None else batch.is_synthetic[chunk],
            now=now,
        )
        ids[chunk] = created
        progress(chunk.size)
    report.users_created += int(new.size)
    is_new = np.zeros(len(ids), dtype=bool)
    is_new[new] = True
    existing = np.flatnonzero(~is_new)
    for start in range(0, existing.size, USER_CHUNK):
        chunk = existing[start : start + USER_CHUNK]
        report.users_updated += _update_existing(conn, batch, chunk, ids[chunk], positions, dim, now)
        progress(chunk.size)
    return ids


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _check_name_clashes(conn: Connection, batch: UserBatch, known_features: set[str]) -> None:
    for name in batch.attribute_names:
        if name in known_features:
            rows = [k for k, a in enumerate(batch.attributes) if name in a and not _is_number(a[name])]
            rows = rows or [k for k, a in enumerate(batch.attributes) if name in a]
            line = batch.line_of(rows[0]) if rows else None
            sample = batch.attributes[rows[0]][name] if rows else ""
            raise InputError(
                f"column {name!r} is a feature column of the store but has non-numeric values here (e.g. {sample[:40]!r}): "
                "fix or empty those cells, or import the column under another name",
                source=batch.source, line=line,
            )
    new_features = [n for n in batch.feature_names if n not in known_features]
    if not new_features:
        return
    wanted = set(new_features)
    for (attrs,) in conn.execute(select(User.attributes).where(User.attributes.is_not(None))):
        attrs = json.loads(attrs) if isinstance(attrs, str) else attrs
        hit = wanted.intersection(attrs or {})
        if hit:
            raise InputError(
                f"column {sorted(hit)[0]!r} is a text attribute in the store but numeric here: import it with "
                f"--text-columns {sorted(hit)[0]}",
                source=batch.source,
            )


def _refuse_real_to_synthetic(conn: Connection, batch: UserBatch, ids: np.ndarray) -> None:
    assert batch.is_synthetic is not None
    rows = np.flatnonzero((ids >= 0) & batch.is_synthetic)
    if rows.size == 0:
        return
    flags: dict[int, bool] = {}
    for start in range(0, rows.size, 10_000):
        chunk = ids[rows[start : start + 10_000]].tolist()
        for uid, synth in conn.execute(
            select(User.id, User.is_synthetic).where(User.id.in_(bindparam("ids", expanding=True))), {"ids": chunk}
        ):
            flags[int(uid)] = bool(synth)
    real = [int(k) for k in rows.tolist() if not flags.get(int(ids[k]), True)]
    if real:
        errors = [
            (batch.line_of(k), f"user {batch.external_ids[k]!r} is a real user and is_synthetic=true would make "
                               "'synth purge' delete it (pass --allow-synthetic-change to mark it synthetic)")
            for k in real[:SHOWN_PROBLEMS]
        ]
        raise InputError.several(errors, source=batch.source, total=len(real))


def _encode(values: np.ndarray, positions: np.ndarray, dim: int) -> list[bytes | None]:
    full = np.zeros((values.shape[0], dim), dtype=np.float32)
    full[:, positions] = values
    return list(encode_rows(full))


def _update_existing(
    conn: Connection,
    batch: UserBatch,
    rows: np.ndarray,
    user_ids: np.ndarray,
    positions: np.ndarray,
    dim: int,
    now: dt.datetime,
) -> int:
    current = {
        r.id: r
        for r in conn.execute(
            select(User.id, User.attributes, User.features, User.is_synthetic).where(
                User.id.in_(bindparam("ids", expanding=True))
            ),
            {"ids": user_ids.tolist()},
        )
    }
    old = decode_rows([current[int(u)].features for u in user_ids], dim)
    merged = old.copy()
    if batch.feature_names:
        merged[:, positions] = batch.features[rows]
    updates = []
    for k, (row, uid) in enumerate(zip(rows.tolist(), user_ids.tolist())):
        record = current[uid]
        attrs = dict(record.attributes or {})
        for name in batch.attribute_names:
            value = batch.attributes[row].get(name)
            if value is None:
                attrs.pop(name, None)
            else:
                attrs[name] = value
        synth = bool(record.is_synthetic) if batch.is_synthetic is None else bool(batch.is_synthetic[row])
        features_changed = not np.array_equal(old[k], merged[k])
        if features_changed or (attrs or None) != (record.attributes or None) or synth != bool(record.is_synthetic):
            blob = encode_rows(merged[k : k + 1])[0] if features_changed else record.features
            updates.append({"uid": uid, "attributes": attrs or None, "features": blob, "is_synthetic": synth, "updated_at": now})
    if updates:
        stmt = (
            update(User)
            .where(User.id == bindparam("uid"))
            .values(
                attributes=bindparam("attributes"),
                features=bindparam("features"),
                is_synthetic=bindparam("is_synthetic"),
                updated_at=bindparam("updated_at"),
            )
        )
        conn.execute(stmt.execution_options(synchronize_session=False), updates)
    return len(updates)


def resolve_users(
    conn: Connection,
    external_ids: Sequence[str],
    *,
    create: bool,
    missing_error: Callable[[int], InputError],
    report: ImportReport,
    progress: Progress = _noop,
) -> np.ndarray:
    """Internal ids for ``external_ids``; unknown ones are created (``create``) or one error
    listing the first few (``missing_error(k)`` describes ``external_ids[k]``) and their count."""
    ids = bulk.lookup_user_ids(conn, external_ids)
    missing = np.flatnonzero(ids < 0)
    if missing.size:
        if not create:
            if missing.size == 1:
                raise missing_error(int(missing[0]))
            errors = [missing_error(int(k)) for k in missing[:SHOWN_PROBLEMS].tolist()]
            raise InputError.several([(e.line, e.problem) for e in errors], source=errors[0].source, total=int(missing.size))
        ids[missing] = bulk.insert_users(conn, [external_ids[int(i)] for i in missing], progress=progress)
        report.users_created += int(missing.size)
    return ids


def write_edges(
    conn: Connection,
    batch: EdgeBatch,
    report: ImportReport,
    *,
    create_users: bool = True,
    progress: Progress = _noop,
) -> None:
    """Insert the batch's friendships (creating unknown users unless ``create_users`` is False)."""

    def unknown(code: int) -> InputError:
        return InputError(
            f"unknown user {batch.ids[code]!r} (import users first, or allow creating them)",
            source=batch.source,
            line=batch.line_of(batch.first_row_of_id(code)),
        )

    ids = resolve_users(conn, batch.ids, create=create_users, missing_error=unknown, report=report)
    a, b = ids[batch.src], ids[batch.dst]
    added = bulk.insert_pairs(conn, "friendships", ("user_lo", "user_hi"), np.minimum(a, b), np.maximum(a, b), progress=progress)
    report.friendships_added += added
    report.friendships_present += int(a.size - added)


def write_blocks(
    conn: Connection,
    batch: EdgeBatch,
    report: ImportReport,
    *,
    create_users: bool = False,
) -> None:
    """Insert directed blocks ``src blocks dst`` (unknown users are an error by default)."""

    def unknown(code: int) -> InputError:
        return InputError(
            f"unknown user {batch.ids[code]!r}",
            source=batch.source,
            line=batch.line_of(batch.first_row_of_id(code)),
        )

    ids = resolve_users(conn, batch.ids, create=create_users, missing_error=unknown, report=report)
    report.blocks_added += bulk.insert_pairs(
        conn, "blocks", ("blocker_id", "blocked_id"), ids[batch.src], ids[batch.dst], extra={"created_at": utcnow()}
    )


def write_labels(conn: Connection, batch: LabelBatch, report: ImportReport) -> None:
    """Upsert labels, one per (user, source); unchanged labels are left untouched."""

    def unknown(k: int) -> InputError:
        return InputError(f"unknown user {batch.external_ids[k]!r}", source=batch.source, line=batch.line_of(k))

    ids = resolve_users(conn, batch.external_ids, create=False, missing_error=unknown, report=report)
    current: dict[tuple[int, str], str] = {}
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000].tolist()
        for uid, src, lab in conn.execute(
            select(Label.user_id, Label.source, Label.label).where(Label.user_id.in_(bindparam("ids", expanding=True))),
            {"ids": chunk},
        ):
            current[(uid, src)] = lab
    now = utcnow()
    inserts, updates = [], []
    for uid, lab, src in zip(ids.tolist(), batch.labels, batch.sources):
        old = current.get((uid, src))
        if old is None:
            inserts.append({"user_id": uid, "source": src, "label": lab, "created_at": now, "updated_at": now})
        elif old != lab:
            updates.append({"uid": uid, "src": src, "label": lab, "updated_at": now})
    if inserts:
        conn.execute(insert(Label), inserts)
    if updates:
        conn.execute(
            update(Label)
            .where(Label.user_id == bindparam("uid"), Label.source == bindparam("src"))
            .values(label=bindparam("label"), updated_at=bindparam("updated_at")),
            updates,
        )
    report.labels_written += len(inserts) + len(updates)


def write_circles(
    conn: Connection,
    circles: Sequence[tuple[str | None, str, Sequence[str]]],
    report: ImportReport,
    *,
    source: str = "import",
) -> None:
    """Upsert circles given as (owner external id or None, name, member external ids)."""
    everyone = sorted({m for _, _, members in circles for m in members} | {o for o, _, _ in circles if o is not None})

    def unknown(k: int) -> InputError:
        return InputError(f"circle member {everyone[k]!r} is not a user", source=report.source)

    ids = resolve_users(conn, everyone, create=False, missing_error=unknown, report=report)
    index = dict(zip(everyone, ids.tolist()))
    existing = {
        (owner, name): cid for cid, owner, name in conn.execute(select(Circle.id, Circle.owner_id, Circle.name))
    }
    members_now: dict[int, set[int]] = {}
    for member_of, uid in conn.execute(select(CircleMember.circle_id, CircleMember.user_id)):
        members_now.setdefault(member_of, set()).add(uid)
    for owner_ext, name, members in circles:
        owner = index[owner_ext] if owner_ext is not None else None
        cid = existing.get((owner, name))
        wanted = {index[m] for m in members}
        created = cid is None
        if cid is None:
            cid = conn.execute(insert(Circle).values(name=name, owner_id=owner, source=source).returning(Circle.id)).scalar_one()
            existing[(owner, name)] = cid
        have = members_now.get(cid, set())
        add = sorted(wanted - have)
        drop = sorted(have - wanted)
        if add:
            conn.execute(insert(CircleMember), [{"circle_id": cid, "user_id": u} for u in add])
        if drop:
            conn.execute(
                delete(CircleMember).where(CircleMember.circle_id == bindparam("c"), CircleMember.user_id == bindparam("u")),
                [{"c": cid, "u": u} for u in drop],
            )
        if created or add or drop:
            report.circles_written += 1
