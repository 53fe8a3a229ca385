"""The SNAP ego-Facebook dataset (McAuley & Leskovec, "Learning to Discover Social Circles in
Ego Networks", NIPS 2012): 4,039 users, 88,234 undirected friendships, anonymised binary profile
features and hand-labelled social circles of 10 ego users.

Each ego network has its own feature list (``<ego>.featnames``); the same feature name in two
ego networks is the same feature, so the union of names (in order of first appearance, egos in
ascending id order) gives one global feature space of 1,406 binary columns. A user present in
several ego networks gets the OR of its vectors. Circles are kept with their ego as owner.

A copy of the raw SNAP files ships inside the package (``data/ego-facebook.tar.xz``);
:func:`load_ego_facebook` also reads the same files from a folder.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from graphrec.errors import InputError

BUNDLED_ARCHIVE = "ego-facebook.tar.xz"
EXPECTED_USERS = 4039
EXPECTED_FRIENDSHIPS = 88234


@dataclass
class EgoFacebook:
    """The parsed dataset: user ``user_ids[i]`` has ``features[i]``; ``edges`` are index pairs."""

    user_ids: np.ndarray  # int64[n], ascending SNAP ids
    features: np.ndarray  # float32[n, d], 0/1
    feature_names: list[str]
    edges: np.ndarray  # int64[m, 2] of SNAP ids, u < v
    circles: list[tuple[int, str, list[int]]] = field(default_factory=list)  # (ego, name, members)
    egos: list[int] = field(default_factory=list)


class _Files:
    """Uniform read access to the dataset files in a folder or in the bundled archive."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._members: dict[str, bytes] = {}
        if path is None:
            blob = resources.files("graphrec.datasets").joinpath("data", BUNDLED_ARCHIVE).read_bytes()
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:xz") as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        fh = tar.extractfile(member)
                        assert fh is not None
                        self._members[Path(member.name).name] = fh.read()
        elif not path.is_dir():
            raise InputError("not a folder with the SNAP ego-Facebook files", source=path)

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else f"<bundled {BUNDLED_ARCHIVE}>"

    def names(self) -> list[str]:
        if self.path is None:
            return sorted(self._members)
        return sorted(p.name for p in self.path.iterdir() if p.is_file())

    def text(self, name: str) -> str:
        try:
            data = self._members[name] if self.path is None else (self.path / name).read_bytes()
        except (KeyError, FileNotFoundError):
            raise InputError(f"missing file {name}", source=self.label) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{name}: not valid UTF-8 at offset {exc.start}", source=self.label) from None


def _lines(text: str) -> Iterator[tuple[int, list[str]]]:
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if parts:
            yield lineno, parts


def _int(token: str, source: str, line: int) -> int:
    try:
        return int(token)
    except ValueError:
        raise InputError(f"non-numeric user id {token!r}", source=source, line=line) from None


def load_ego_facebook(path: str | Path | None = None) -> EgoFacebook:
    """Parse ego-Facebook from ``path`` (a folder of SNAP files) or the bundled copy."""
    files = _Files(Path(path) if path is not None else None)
    names = files.names()
    egos = sorted(int(n.split(".")[0]) for n in names if n.endswith(".featnames"))
    if not egos:
        raise InputError("no <ego>.featnames files found", source=files.label)

    feature_index: dict[str, int] = {}
    rows: dict[int, set[int]] = {}
    circles: list[tuple[int, str, list[int]]] = []
    for ego in egos:
        local: dict[int, int] = {}
        fname = f"{ego}.featnames"
        for lineno, parts in _lines(files.text(fname)):
            if len(parts) < 2:
                raise InputError("expected '<index> <name>'", source=f"{files.label}/{fname}", line=lineno)
            name = " ".join(parts[1:])
            local[_int(parts[0], fname, lineno)] = feature_index.setdefault(name, len(feature_index))

        def add_vector(uid: int, bits: list[str], where: str, lineno: int) -> None:
            if len(bits) != len(local):
                raise InputError(f"expected {len(local)} feature values, found {len(bits)}", source=where, line=lineno)
            on = rows.setdefault(uid, set())
            for j, bit in enumerate(bits):
                if bit == "1":
                    on.add(local[j])
                elif bit != "0":
                    raise InputError(f"feature value {bit!r} is not 0 or 1", source=where, line=lineno)

        for lineno, parts in _lines(files.text(f"{ego}.feat")):
            add_vector(_int(parts[0], f"{ego}.feat", lineno), parts[1:], f"{files.label}/{ego}.feat", lineno)
        for lineno, parts in _lines(files.text(f"{ego}.egofeat")):
            add_vector(ego, parts, f"{files.label}/{ego}.egofeat", lineno)
        for lineno, parts in _lines(files.text(f"{ego}.circles")):
            members = sorted({_int(p, f"{ego}.circles", lineno) for p in parts[1:]})
            circles.append((ego, parts[0], members))

    edges_list: list[tuple[int, int]] = []
    combined = "facebook_combined.txt"
    for lineno, parts in _lines(files.text(combined)):
        if parts[0].startswith("#"):
            continue
        if len(parts) < 2:
            raise InputError("expected two user ids", source=f"{files.label}/{combined}", line=lineno)
        u, v = _int(parts[0], combined, lineno), _int(parts[1], combined, lineno)
        if u == v:
            raise InputError(f"self-loop on user {u}", source=f"{files.label}/{combined}", line=lineno)
        edges_list.append((min(u, v), max(u, v)))
    edges = np.unique(np.asarray(edges_list, dtype=np.int64).reshape(-1, 2), axis=0)

    user_ids = np.unique(np.concatenate([edges.ravel(), np.fromiter(rows, dtype=np.int64)]))
    features = np.zeros((user_ids.size, len(feature_index)), dtype=np.float32)
    pos = {int(u): i for i, u in enumerate(user_ids.tolist())}
    for uid, on in rows.items():
        if on:
            features[pos[uid], sorted(on)] = 1.0
    for ego, name, members in circles:
        unknown = [m for m in members if m not in pos]
        if unknown:
            raise InputError(f"circle {name} of ego {ego} names unknown user {unknown[0]}", source=files.label)
    names_in_order = sorted(feature_index, key=feature_index.__getitem__)
    return EgoFacebook(
        user_ids=user_ids,
        features=features,
        feature_names=names_in_order,
        edges=edges,
        circles=circles,
        egos=egos,
    )
