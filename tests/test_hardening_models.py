"""Issue 15, part B: model files and output files.

Every broken model file (a truncated or garbage ``arrays.safetensors``, non-finite arrays, a
manifest whose shapes, ``folds``, ``profile_dim``, threshold or network arguments disagree with
the arrays, a FAISS header claiming 16 GiB) is one :class:`~graphrec.artifacts.ArtifactError`
line for every model kind, raised before anything is built from the bad field; output files
refuse non-regular targets and unwritable folders with one line; a synth run's users and its
``model_runs`` row land together or not at all."""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import train_once
from graphrec import artifacts
from graphrec.cli import cli
from graphrec.store.store import GraphStore
from graphrec.tasks.base import train_and_register
from graphrec.tasks.bots.inject import honest_graph, inject_bot_region, load_into_store, sample_labels
from graphrec.tasks.registry import get_task

#: artifact kind -> the task that trains and loads it
TASKS = {"linkpred": "linkpred", "siamese": "siamese", "bot": "bots", "anomaly": "anomaly", "synth": "synth"}
KINDS = list(TASKS)


def _load_graph(store: GraphStore) -> None:
    g = inject_bot_region(honest_graph(300, mean_degree=8, n_features=6, seed=0), n_bots=30, attack_edges=3, seed=0)
    load_into_store(store, g, sample_labels(g.is_bot, 0.2, seed=0))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model of every kind, trained once (artifacts do not depend on the database)."""
    from graphrec.tasks.synth.config import SynthConfig
    from graphrec.tasks.synth.synthesize import synthesize

    def train(store: GraphStore) -> None:
        for name, cfg in (("linkpred", {"epochs": 1}), ("siamese", {"epochs": 1}), ("bots", {"folds": 2, "epochs": 5}), ("anomaly", {"epochs": 2})):
            task = get_task(name)
            train_and_register(store, task, task.config_type(seed=0, threads=1, **cfg))  # type: ignore[call-arg]
        synthesize(store, SynthConfig(n=10, epochs=2, threads=1))

    return train_once(tmp_path_factory.mktemp("hardening_models"), _load_graph, train)


@pytest.fixture
def home(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained, tmp_path / "home")
    return tmp_path / "home"


def _folder(home: Path, kind: str) -> Path:
    version = artifacts.latest_version(home, kind)
    assert version is not None
    return home / "models" / kind / version


def _edit_manifest(folder: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((folder / artifacts.MANIFEST).read_text())
    change(manifest)
    (folder / artifacts.MANIFEST).write_text(json.dumps(manifest))


def _edit_arrays(folder: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(folder / artifacts.ARRAYS))
    change(arrays)
    save_file(arrays, str(folder / artifacts.ARRAYS))


def _refused(home: Path, kind: str, match: str) -> str:
    """Loading the served ``kind`` model is one ArtifactError line matching ``match``, fast."""
    t0 = time.perf_counter()
    with pytest.raises(artifacts.ArtifactError, match=match) as info:
        get_task(TASKS[kind]).load(home)
    assert time.perf_counter() - t0 < 20, "validated before building anything"
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 4
    return message


def test_every_kind_loads_untouched(home: Path) -> None:
    for kind in KINDS:
        assert get_task(TASKS[kind]).load(home).version == artifacts.latest_version(home, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("damage", ["truncated", "garbage", "header"])
def test_a_truncated_or_garbage_safetensors_file_is_one_line(home: Path, kind: str, damage: str) -> None:
    path = _folder(home, kind) / artifacts.ARRAYS
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:  # a header length claiming a terabyte
        path.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    message = _refused(home, kind, r"arrays\.safetensors is truncated or not a safetensors file")
    assert f"{kind} model" in message


@pytest.mark.parametrize("kind", KINDS)
def test_non_finite_arrays_are_refused(home: Path, kind: str) -> None:
    def poison(arrays: dict[str, np.ndarray]) -> None:
        name = next(k for k, v in arrays.items() if v.dtype.kind == "f" and v.size)
        arrays[name] = arrays[name].copy()
        arrays[name].flat[0] = np.nan

    _edit_arrays(_folder(home, kind), poison)
    _refused(home, kind, "NaN or infinite")


@pytest.mark.parametrize("kind", KINDS)
def test_a_manifest_that_is_not_an_object_is_refused(home: Path, kind: str) -> None:
    (_folder(home, kind) / artifacts.MANIFEST).write_text("[1, 2]")
    _refused(home, kind, f"is not a {kind} model")
    with pytest.raises(artifacts.ArtifactError, match="not a JSON object"):
        artifacts.read_manifest(home, kind, _folder(home, kind).name)


@pytest.mark.parametrize("folds", [10**8, 3, 1, 0, -1])
def test_bot_folds_disagreeing_with_the_arrays_are_refused_without_building(home: Path, folds: int) -> None:
    _edit_manifest(_folder(home, "bot"), lambda m: m.update(folds=folds))
    _refused(home, "bot", r"the manifest says -?\d+ folds, the arrays hold fold0, fold1")


@pytest.mark.parametrize("kind", ["bot", "anomaly"])
def test_a_threshold_of_minus_one_is_refused(home: Path, kind: str) -> None:
    _edit_manifest(_folder(home, kind), lambda m: m.update(threshold=-1))
    _refused(home, kind, "threshold")


def test_linkpred_profile_dim_and_structure_are_checked_against_the_arrays(home: Path) -> None:
    folder = _folder(home, "linkpred")
    _edit_manifest(folder, lambda m: m.update(profile_dim=99))
    _refused(home, "linkpred", "feature names for profile_dim 99")
    _edit_manifest(folder, lambda m: m.update(profile_dim=-3))
    _refused(home, "linkpred", "profile_dim -3 is not a column count")
    _edit_manifest(folder, lambda m: m.update(profile_dim=6))

    def huge_row(arrays: dict[str, np.ndarray]) -> None:  # np.repeat would allocate 10^12 entries
        indptr = arrays["profiles.indptr"].copy()
        indptr[-1] = 10**12
        arrays["profiles.indptr"] = indptr

    _edit_arrays(folder, huge_row)
    _refused(home, "linkpred", "the profile matrix has a malformed row index")


def test_siamese_in_dim_disagreeing_with_the_arrays_is_refused(home: Path) -> None:
    _edit_manifest(_folder(home, "siamese"), lambda m: m.update(in_dim=99))
    _refused(home, "siamese", "expected 99")


def test_network_arguments_larger_than_the_weights_are_refused_before_building(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from graphrec.nn import autoencoders
    from graphrec.tasks.synth import profiles

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network was built from a manifest that disagrees with the arrays")

    monkeypatch.setattr(autoencoders.FeatureAutoencoder, "__init__", never)
    monkeypatch.setattr(autoencoders.DominantAutoencoder, "__init__", never)
    monkeypatch.setattr(profiles, "build_generator", never)
    _edit_manifest(_folder(home, "anomaly"), lambda m: m["network"].update(hidden=10**8))
    _refused(home, "anomaly", r"network argument hidden=100000000 does not fit the saved weights")
    _edit_manifest(_folder(home, "synth"), lambda m: m["generator"]["args"].update(hidden=[10**8, 256]))
    _refused(home, "synth", r"generator argument hidden\[0\]=100000000 does not fit the saved weights")
    _edit_manifest(_folder(home, "synth"), lambda m: m["generator"]["args"].update(hidden=[512, 256], n_classes=3))
    _refused(home, "synth", "0 class names for a generator of 3 classes")


def _claim_16_gib(path: Path) -> None:
    """Rewrite a flat FAISS index (or the flat index inside an id map) so that its header and
    vector length ask for 16 GiB of vectors; the file stays a few KiB."""
    data = bytearray(path.read_bytes())
    outer = data[:4] in (b"IxM2", b"IxMp")
    off = 37 if outer else 0  # fourcc + header: 4 + 33 bytes
    assert data[off:off + 4] == b"IxFI"
    d = struct.unpack_from("<i", data, off + 4)[0]
    ntotal = (16 << 30) // (4 * d)
    struct.pack_into("<q", data, off + 8, ntotal)
    struct.pack_into("<Q", data, off + 37, ntotal * d)
    if outer:
        struct.pack_into("<q", data, 8, ntotal)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind,name", [("linkpred", "embeddings.faiss"), ("siamese", "index/index.faiss")])
def test_a_faiss_header_asking_for_16_gib_is_refused_before_faiss_reads_it(home: Path, kind: str, name: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("faiss.read_index would allocate what the header claims")

    _claim_16_gib(_folder(home, kind) / name)
    monkeypatch.setattr(faiss, "read_index", never)
    _refused(home, kind, r"unreadable FAISS index .* the vectors claims \d+ entries of 4 bytes")


def test_the_faiss_walk_accepts_every_form_graphrec_writes(tmp_path: Path) -> None:
    from graphrec.core.index import EmbeddingIndex, check_faiss_file

    x = np.random.default_rng(0).random((60, 8)).astype(np.float32)
    keys = [str(i) for i in range(60)]
    for exact in (True, False):
        for keyed in (False, True):
            idx = EmbeddingIndex.build(x, keys if keyed else None, exact=exact)
            if keyed:
                idx.remove(keys[:5])
                idx.upsert(keys[:3], x[:3])
            path = tmp_path / f"{exact}-{keyed}"
            idx.save(path)
            loaded = EmbeddingIndex.load(path)
            assert loaded.size == idx.size
            faiss_file = path / EmbeddingIndex.FAISS_FILE if keyed else path
            check_faiss_file(faiss_file)
            with open(faiss_file, "ab") as fh:
                fh.write(b"\0")
            with pytest.raises(ValueError, match="unexpected bytes"):
                EmbeddingIndex.load(path)


def _cli(store: GraphStore, *args: str):  # noqa: ANN202
    env = {"GRAPHREC_DATABASE_URL": store.engine.url.render_as_string(hide_password=False), "GRAPHREC_HOME": str(store.settings.home)}
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.mark.parametrize("kind,command", [("linkpred", ("recommend", "--user", "0")), ("siamese", ("similar", "--user", "0")),
                                          ("bot", ("score",)), ("anomaly", ("score",))])
def test_the_cli_reports_a_broken_model_file_in_one_line(database_url: str, home: Path, kind: str, command: tuple[str, ...]) -> None:
    store = GraphStore(database_url, home=home)
    store.initialize()
    _load_graph(store)
    path = _folder(home, kind) / artifacts.ARRAYS
    path.write_bytes(path.read_bytes()[:100])
    res = _cli(store, *command)
    assert res.exit_code == 4, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "arrays.safetensors is truncated" in lines[-1], res.output
    assert "Traceback" not in res.output


# -- item 2: output paths ---------------------------------------------------------------------------
@pytest.fixture
def small_store(store: GraphStore) -> GraphStore:
    for i in range(3):
        store.add_user(str(i))
    store.add_friendship("0", "1")
    return store


def _non_regular(tmp_path: Path, what: str) -> Path:
    path = tmp_path / what
    if what == "fifo":
        os.mkfifo(path)
    elif what == "device":
        if os.geteuid() != 0:
            pytest.skip("creating a device node needs root")
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    else:
        path.mkdir()
    return path


@pytest.mark.parametrize("what", ["fifo", "device", "folder"])
def test_exports_refuse_a_non_regular_target(small_store: GraphStore, tmp_path: Path, what: str) -> None:
    target = _non_regular(tmp_path, what)
    before = os.stat(target).st_mode
    res = _cli(small_store, "export", "users", "-o", str(target))
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a regular file" in lines[0] and str(target) in lines[0]
    assert os.stat(target).st_mode == before  # still the FIFO / device / folder it was
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_batch_recommend_refuses_a_fifo_output(database_url: str, home: Path, tmp_path: Path) -> None:
    store = GraphStore(database_url, home=home)
    store.initialize()
    _load_graph(store)
    (tmp_path / "users.txt").write_text("0\n1\n")
    fifo = _non_regular(tmp_path, "fifo")
    res = _cli(store, "recommend", "--users-file", str(tmp_path / "users.txt"), "-o", str(fifo))
    assert res.exit_code == 2 and res.output.strip().startswith("error: ") and "FIFO" in res.output, res.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_an_output_in_an_unwritable_folder_is_one_line(small_store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import tempfile

    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:  # a real read-only folder (root writes through permissions)
        folder.chmod(0o555)
        res = _cli(small_store, "export", "users", "-o", str(folder / "u.csv"))
        folder.chmod(0o755)
        assert res.exit_code == 2 and res.output.startswith("error: ") and res.output.count("\n") == 1, res.output

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    res = _cli(small_store, "export", "users", "-o", str(folder / "u.csv"))
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"error: {folder}: cannot write in this folder: Read-only file system") and res.output.count("\n") == 1


def test_outputs_are_fsynced_before_the_rename_and_follow_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from graphrec import fileio

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with fileio.atomic_output(link) as fh:
        fh.write("new\n")
    assert events[:2] == ["fsync", "replace"]  # the file reaches the disk before it replaces the old one
    assert link.is_symlink() and real.read_text() == "new\n"
    assert stat.S_IMODE(real.stat().st_mode) == fileio.default_file_mode()


# -- item 3: a synth run's users and its model_runs row in one transaction ----------------------------
def _synth_counts(store: GraphStore) -> tuple[int, int, int]:
    from sqlalchemy import text

    with store.read() as conn:
        users = int(conn.execute(text("SELECT COUNT(*) FROM users WHERE is_synthetic = :t"), {"t": True}).scalar_one())
        edges = int(conn.execute(text("SELECT COUNT(*) FROM friendships")).scalar_one())
        runs = int(conn.execute(text("SELECT COUNT(*) FROM model_runs WHERE kind = 'synth'")).scalar_one())
    return users, edges, runs


def test_a_synth_run_failing_at_its_model_run_row_leaves_no_synthetic_users(store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last write of the transaction (the model_runs row) fails, as a kill there would: the
    users and friendships written before it in the same transaction are rolled back, nothing is
    served; synth never records its run in a transaction of its own."""
    from graphrec.tasks.synth.config import SynthConfig
    from graphrec.tasks.synth.synthesize import synthesize

    _load_graph(store)
    before = _synth_counts(store)

    def separate(*args: object, **kwargs: object) -> None:
        raise AssertionError("synth recorded its run in a transaction of its own")

    def killed(conn: object, record: object) -> None:
        raise RuntimeError("killed while writing the model_runs row")

    monkeypatch.setattr(GraphStore, "record_model_run", separate)
    monkeypatch.setattr(GraphStore, "_insert_model_run", staticmethod(killed))
    with pytest.raises(RuntimeError, match="killed"):
        synthesize(store, SynthConfig(n=10, epochs=2, threads=1))
    assert _synth_counts(store) == before and before[0] == 0 and before[2] == 0
    assert artifacts.latest_version(store.settings.home, "synth") is None
    monkeypatch.undo()
    monkeypatch.setattr(GraphStore, "record_model_run", separate)
    report = synthesize(store, SynthConfig(n=10, epochs=2, threads=1))
    users, edges, runs = _synth_counts(store)
    assert (users, runs) == (10, 1) and edges == before[1] + report.friendships_added
    assert artifacts.latest_version(store.settings.home, "synth") is not None
