"""Batch recommendations and the index sync on Ray (issue 17): the same outputs as the local
engine, on a local 2-CPU Ray cluster started once for the module."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray engine needs the distributed extra: pip install 'graphrec[distributed]'")

from click.testing import CliRunner, Result  # noqa: E402

from conftest import ego_facebook_store, store_with_models, write  # noqa: E402
from graphrec.cli import cli  # noqa: E402
from graphrec.core.index import EmbeddingIndex  # noqa: E402
from graphrec.distributed.engine import RayOptions  # noqa: E402
from graphrec.errors import GraphrecError, InputError  # noqa: E402
from graphrec.serving.recommend import recommend_batch  # noqa: E402
from graphrec.serving.similar import SimilarUsers, sync_index  # noqa: E402
from graphrec.store.engine import dispose_engine  # noqa: E402
from graphrec.store.scores import NewScoringRun  # noqa: E402
from graphrec.store.store import GraphStore  # noqa: E402
from graphrec.tasks.base import train_and_register  # noqa: E402
from graphrec.tasks.linkpred.config import LinkPredConfig  # noqa: E402
from graphrec.tasks.linkpred.train import LinkPredTask  # noqa: E402
from graphrec.tasks.siamese.config import SiameseConfig  # noqa: E402
from graphrec.tasks.siamese.train import SiameseTask  # noqa: E402

FAST = LinkPredConfig(seed=0, rounds=1, users_per_round=400, epochs=2, gnn_dim=8)
RAY = RayOptions(workers=2)


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster (2 CPUs) for the module; every engine call joins it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> GraphStore:
    """ego-Facebook with a link model, a Siamese model, a complete bot run that flags a few
    users, and a deleted user."""
    store = ego_facebook_store(tmp_path_factory.mktemp("ray_batch"))
    train_and_register(store, LinkPredTask(), FAST)
    train_and_register(store, SiameseTask(), SiameseConfig(seed=0, epochs=1, batch_size=256))
    snap = store.snapshot()
    flagged = np.isin(snap.external_ids, ["25", "56", "67", "119", "200", "322"])
    store.write_scoring_runs([NewScoringRun("bot", dt.date(2026, 11, 30), snap.user_ids, flagged * 0.9 + 0.05, flagged, 0.5,
                                            summary={"data_revision": snap.revision})])
    store.remove_user("9")
    return store


def users_file(tmp_path: Path) -> Path:
    """100 users with what a batch meets: a BOM, blank lines, an unknown and a deleted user, a
    repeated user."""
    ids = [str(u) for u in range(0, 400, 4)] + ["nobody", "9", "0"]
    return write(tmp_path / "users.txt", "\ufeff" + "\n".join(ids[:50]) + "\n\n" + "\n".join(ids[50:]) + "\n")


def _report(report: Any) -> dict[str, Any]:
    return {key: value for key, value in report.summary().items() if key != "output"}


def test_ray_batch_is_byte_identical_to_the_local_one(served: GraphStore, tmp_path: Path) -> None:
    users = users_file(tmp_path)
    local = recommend_batch(served, users, tmp_path / "local.jsonl", k=10)
    distributed = recommend_batch(served, users, tmp_path / "ray.jsonl", k=10, engine="ray", ray=RAY)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert _report(distributed) == _report(local)
    assert (local.users, local.failed) == (103, 2) and local.filtered["bots"] > 0 and "flagged by bot run" in local.bot_filter
    lines = [json.loads(x) for x in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert [x["user"] for x in lines][:3] == ["0", "4", "8"] and lines[-3]["user"] == "nobody" and lines[-3]["line"] == 102
    assert "error" in lines[-2] and len(lines[-1]["recommendations"]) == 10


def test_ray_batch_with_more_workers_than_cpus_and_no_bot_filter(served: GraphStore, tmp_path: Path) -> None:
    users = write(tmp_path / "users.txt", "\n".join(str(u) for u in range(30)) + "\n")
    local = recommend_batch(served, users, tmp_path / "local.jsonl", k=3, bot_threshold=None)
    distributed = recommend_batch(served, users, tmp_path / "ray.jsonl", k=3, bot_threshold=None, engine="ray", ray=RayOptions(workers=3))
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert _report(distributed) == _report(local) and local.bot_filter == "off"


def test_ray_batch_errors_are_the_local_ones_and_leave_the_output_alone(served: GraphStore, tmp_path: Path) -> None:
    users = write(tmp_path / "users.txt", "0\n1\n")
    out = write(tmp_path / "out.jsonl", "old\n")
    errors = []
    for engine in ("local", "ray"):
        with pytest.raises(GraphrecError) as info:
            recommend_batch(served, users, out, version="20990101-000000-aaaaaa", engine=engine, ray=RAY)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1] and "20990101-000000-aaaaaa" in errors[0][1]
    assert out.read_text() == "old\n"
    with pytest.raises(InputError, match="no such file"):
        recommend_batch(served, tmp_path / "missing.txt", out, engine="ray", ray=RAY)
    with pytest.raises(InputError, match="unknown engine 'spark'"):
        recommend_batch(served, users, out, engine="spark")
    memory = GraphStore("sqlite://", home=served.settings.home)
    with pytest.raises(InputError, match="in-memory"):
        recommend_batch(memory, users, out, engine="ray", ray=RAY)


@pytest.mark.postgres
def test_ray_batch_on_postgresql_is_the_local_one(served: GraphStore, pg_url: str, tmp_path: Path) -> None:
    """Each worker opens the PostgreSQL store from its URL (here with a private schema in the
    URL's options) and answers as the local engine does."""
    store = store_with_models(pg_url, tmp_path, served.settings.home, lambda s: s.import_ego_facebook())
    users = write(tmp_path / "users.txt", "\n".join(str(u) for u in range(0, 120, 3)) + "\nnobody\n")
    local = recommend_batch(store, users, tmp_path / "local.jsonl", k=5)
    distributed = recommend_batch(store, users, tmp_path / "ray.jsonl", k=5, engine="ray", ray=RAY)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert _report(distributed) == _report(local) and (local.users, local.failed) == (41, 1)


def test_a_worker_killed_mid_batch_is_restarted_and_its_chunk_retried(served: GraphStore, tmp_path: Path) -> None:
    """SIGKILL one actor while it computes a chunk: Ray restarts it (the model is loaded again)
    and retries the chunk, and the output is still the local one."""
    psutil = pytest.importorskip("psutil")
    users = write(tmp_path / "users.txt", "\n".join(str(u) for u in range(0, 4000, 20)) + "\n")
    local = recommend_batch(served, users, tmp_path / "local.jsonl", k=5, bot_threshold=None)
    killed: list[int] = []

    def kill_one_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for proc in psutil.Process().children(recursive=True):  # this test's own Ray cluster only
                try:
                    if "BatchWorker.lines" in " ".join(proc.cmdline()):
                        proc.kill()
                        killed.append(proc.pid)
                        return
                except psutil.Error:
                    continue
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_busy_worker)
    killer.start()
    distributed = recommend_batch(served, users, tmp_path / "ray.jsonl", k=5, bot_threshold=None, engine="ray", ray=RAY)
    killer.join()
    assert killed, "no busy batch worker was found to kill"
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert _report(distributed) == _report(local)


def _index_state(home: Path, store: GraphStore) -> tuple[dict[str, int], set[int], np.ndarray]:
    """What a Siamese index holds: key -> label, tombstones, and every live vector by label order."""
    svc = SimilarUsers(GraphStore(store.settings.database_url, home=home))
    idx: EmbeddingIndex = svc.index
    labels = sorted(idx.ext_of)
    vectors = np.stack([idx.index.reconstruct(lab) for lab in labels]) if labels else np.empty((0, idx.dim))
    return dict(idx.label_of), set(idx.tombstones), vectors


def test_index_sync_on_ray_builds_the_local_index(served: GraphStore, tmp_path: Path) -> None:
    homes = {}
    for engine in ("local", "ray"):
        homes[engine] = tmp_path / engine
        shutil.copytree(served.settings.home, homes[engine])
    # changes since the index was synced: new users, changed profiles, deleted users (9 and 17)
    column = served.snapshot().feature_names[3]
    for u in ("newcomer-1", "newcomer-2", "newcomer-3"):
        served.add_user(u, features={column: 1.0})
    for u in ("30", "31"):
        served.update_user(u, features={column: 1.0})
    served.remove_user("17")
    reports = {}
    for engine, home in homes.items():
        store = GraphStore(served.settings.database_url, home=home)
        reports[engine] = sync_index(store, engine=engine, ray=RAY)
    assert reports["ray"] == reports["local"] and reports["local"]["upserted"] == 5 and reports["local"]["removed"] == 2
    local, distributed = _index_state(homes["local"], served), _index_state(homes["ray"], served)
    assert distributed[0] == local[0] and distributed[1] == local[1] and "newcomer-2" in local[0] and "17" not in local[0]
    np.testing.assert_allclose(distributed[2], local[2], atol=1e-6)
    manifests = [json.loads(next((h / "models" / "siamese").glob("*/manifest.json")).read_text()) for h in homes.values()]
    assert manifests[0]["index_synced_at"] > "2026" and manifests[1]["index_synced_at"] >= manifests[0]["index_synced_at"]


def _cli(store: GraphStore, *args: str) -> Result:
    env = {"GRAPHREC_DATABASE_URL": store.settings.database_url, "GRAPHREC_HOME": str(store.settings.home)}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_cli_engine_flags(served: GraphStore, tmp_path: Path) -> None:
    users = write(tmp_path / "users.txt", "0\n1\n2\n")
    r = _cli(served, "recommend", "--users-file", str(users), "-o", str(tmp_path / "local.jsonl"), "-k", "4", "--format", "json")
    assert r.exit_code == 0, r.output
    r = _cli(served, "recommend", "--users-file", str(users), "-o", str(tmp_path / "ray.jsonl"), "-k", "4", "--engine", "ray",
             "--workers", "2", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["users"] == 3
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    for args, message in ((["recommend", "0", "--engine", "ray"], "--engine ray goes with --users-file"),
                          (["recommend", "--users-file", str(users), "-o", str(tmp_path / "x.jsonl"), "--workers", "2"],
                           "--ray-address and --workers go with --engine ray"),
                          (["index", "sync", "--ray-address", "auto"], "--ray-address and --workers go with --engine ray")):
        r = _cli(served, *args)
        assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output
    r = _cli(served, "recommend", "--users-file", str(users), "-o", str(tmp_path / "x.jsonl"), "--engine", "spark")
    assert r.exit_code == 2 and "spark" in r.output
    r = _cli(served, "index", "sync", "--engine", "ray", "--workers", "2", "--format", "json")
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.stdout)) == {"model_version", "upserted", "removed", "indexed", "tombstones"}


def test_import_graphrec_does_not_import_ray() -> None:
    import subprocess
    import sys

    code = "import graphrec, graphrec.serving.recommend, graphrec.serving.similar, graphrec.cli, sys; print('ray' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "False", res.stderr


def teardown_module() -> None:
    dispose_engine("sqlite://")
