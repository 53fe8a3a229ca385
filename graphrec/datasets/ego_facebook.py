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
import re
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
_EGO_FILE = re.compile(r"^(\d{1,18})\.featnames$")
_INT64_MAX = 2**63 - 1


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


def _int(token: str, source: str, line: int, what: str = "user id") -> int:
    if len(token) > 19 or not re.fullmatch(r"[+-]?\d+", token):
        shown = token if len(token) <= 40 else token[:40] + "..."
        raise InputError(f"{what} {shown!r} is not an integer of at most 18 digits", source=source, line=line)
    value = int(token)
    if abs(value) > _INT64_MAX:
        raise InputError(f"{what} {token!r} is out of range", source=source, line=line)
    return value


def load_ego_facebook(path: str | Path | None = None) -> EgoFacebook:
    """Parse ego-Facebook from ``path`` (a folder of SNAP files) or the bundled copy."""
    files = _Files(Path(path) if path is not None else None)
    names = files.names()
    odd = [n for n in names if n.endswith(".featnames") and not _EGO_FILE.match(n)]
    if odd:
        raise InputError(f"unexpected file name {odd[0]!r}: feature name files are <ego id>.featnames", source=files.label)
    egos = sorted(int(m.group(1)) for n in names if (m := _EGO_FILE.match(n)))
    if not egos:
        raise InputError("no <ego>.featnames files found", source=files.label)

    feature_index: dict[str, int] = {}
    rows: dict[int, set[int]] = {}
    circles: list[tuple[int, str, list[int]]] = []
    for ego in egos:
        local: dict[int, int] = {}
        fname = f"{ego}.featnames"
        where_names = f"{files.label}/{fname}"
        for lineno, parts in _lines(files.text(fname)):
            if len(parts) < 2:
                raise InputError("expected '<index> <name>'", source=where_names, line=lineno)
            name = " ".join(parts[1:])
            if len(name) > 255:
                raise InputError("feature name longer than 255 characters", source=where_names, line=lineno)
            index = _int(parts[0], where_names, lineno, "feature index")
            if index != len(local):  # the .feat columns are positional: indices must run 0, 1, 2, ...
                raise InputError(f"feature index {index} where {len(local)} was expected (indices run 0, 1, 2, ... without gaps)",
                                 source=where_names, line=lineno)
            local[index] = feature_index.setdefault(name, len(feature_index))

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
            add_vector(_int(parts[0], f"{files.label}/{ego}.feat", lineno), parts[1:], f"{files.label}/{ego}.feat", lineno)
        for lineno, parts in _lines(files.text(f"{ego}.egofeat")):
            add_vector(ego, parts, f"{files.label}/{ego}.egofeat", lineno)
        circle_lines: dict[str, int] = {}
        for lineno, parts in _lines(files.text(f"{ego}.circles")):
            if parts[0] in circle_lines:
                raise InputError(f"duplicate circle {parts[0]!r} (first on line {circle_lines[parts[0]]})",
                                 source=f"{files.label}/{ego}.circles", line=lineno)
            circle_lines[parts[0]] = lineno
            if len(parts[0]) > 255:
                raise InputError("circle name longer than 255 characters", source=f"{files.label}/{ego}.circles", line=lineno)
            members = sorted({_int(p, f"{files.label}/{ego}.circles", lineno) for p in parts[1:]})
            circles.append((ego, parts[0], members))

    edges_list: list[tuple[int, int]] = []
    combined = "facebook_combined.txt"
    for lineno, parts in _lines(files.text(combined)):
        if parts[0].startswith("#"):
            continue
        if len(parts) < 2:
            raise InputError("expected two user ids", source=f"{files.label}/{combined}", line=lineno)
        where = f"{files.label}/{combined}"
        u, v = _int(parts[0], where, lineno), _int(parts[1], where, lineno)
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
