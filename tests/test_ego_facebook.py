"""The bundled SNAP ego-Facebook dataset: parsing and import on both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphrec.datasets import load_ego_facebook
from graphrec.store.store import GraphStore

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ego-facebook"


@pytest.fixture(scope="module")
def ego():
    return load_ego_facebook()


def test_bundled_dataset_has_the_published_sizes(ego) -> None:
    assert ego.user_ids.size == 4039
    assert ego.edges.shape == (88234, 2)
    assert ego.features.shape == (4039, 1406)
    assert len(ego.circles) == 193
    assert ego.egos == [0, 107, 348, 414, 686, 698, 1684, 1912, 3437, 3980]
    ones = ego.features.sum(axis=1)
    assert 9.4 < ones.mean() < 9.6
    assert int((ones == 0).sum()) == 8
    assert set(np.unique(ego.features)) == {0.0, 1.0}
    assert (ego.edges[:, 0] < ego.edges[:, 1]).all()


@pytest.mark.slow
def test_features_are_the_or_of_every_ego_network(ego) -> None:
    """Recompute one user's global vector straight from the raw per-ego files (bundled copy)."""
    import io
    import tarfile
    from importlib import resources

    blob = resources.files("graphrec.datasets").joinpath("data", "ego-facebook.tar.xz").read_bytes()
    files = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:xz") as tar:
        for m in tar.getmembers():
            if m.isfile():
                files[Path(m.name).name] = tar.extractfile(m).read().decode()
    column = {name: j for j, name in enumerate(ego.feature_names)}
    seen_in = {}
    for egoid in ego.egos:
        names = [" ".join(l.split()[1:]) for l in files[f"{egoid}.featnames"].splitlines() if l.strip()]
        for line in files[f"{egoid}.feat"].splitlines():
            parts = line.split()
            uid = int(parts[0])
            seen_in.setdefault(uid, set()).update(column[names[j]] for j, b in enumerate(parts[1:]) if b == "1")
    multi = [u for u in seen_in if sum(f"\n{u} " in "\n" + files[f"{e}.feat"] for e in ego.egos) > 1]
    assert multi, "some users belong to several ego networks"
    pos = {int(u): i for i, u in enumerate(ego.user_ids.tolist())}
    for uid in multi[:25] + list(seen_in)[:25]:
        if uid in ego.egos:
            continue
        assert set(np.flatnonzero(ego.features[pos[uid]]).tolist()) == seen_in[uid]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/ data folder not present")
def test_folder_and_bundled_copy_agree(ego) -> None:
    other = load_ego_facebook(SHARED)
    assert other.feature_names == ego.feature_names
    np.testing.assert_array_equal(other.features, ego.features)
    np.testing.assert_array_equal(other.edges, ego.edges)


@pytest.mark.slow
def test_import_into_store(store: GraphStore, ego) -> None:
    report = store.import_ego_facebook()
    assert (report.users_created, report.friendships_added, report.circles_written, report.feature_columns_added) == (
        4039,
        88234,
        193,
        1406,
    )
    stats = store.stats()
    assert (stats.users, stats.friendships, stats.circles, stats.feature_columns) == (4039, 88234, 193, 1406)
    assert stats.components == 1
    snap = store.snapshot()
    np.testing.assert_array_equal(snap.features, ego.features)  # same order: ids 0..4038
    assert snap.external_ids.tolist() == [str(u) for u in ego.user_ids.tolist()]
    circle = next(c for c in snap.circles if c.name == "circle0" and snap.external_ids[c.owner] == "0")
    raw = next(m for e, n, m in ego.circles if e == 0 and n == "circle0")
    assert sorted(snap.external_ids[circle.members].tolist(), key=int) == [str(m) for m in raw]
    assert store.mutual_friends("0", "1") == sorted(
        set(store.neighbours("0")) & set(store.neighbours("1")), key=int
    )
    again = store.import_ego_facebook()
    assert not again.changed and again.revision == report.revision
