"""Thread use that degrades gracefully (graphrec.threads): how many threads by default, the
``GRAPHREC_THREADS`` override, passive OpenMP waiting set before torch loads, and ``--threads``
reaching the recorded parameters of a trained model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from graphrec import artifacts
from graphrec.cli import cli
from graphrec.errors import InputError
from graphrec.threads import (
    THREADS_ENV,
    available_cores,
    cgroup_cpu_limit,
    default_threads,
    resolve_config_threads,
    use_passive_waiting,
)

ROOT = Path(__file__).resolve().parents[1]
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def _cgroup(tmp_path: Path, self_line: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A fake cgroup mount under ``tmp_path/cg`` holding ``files`` and a fake /proc/self/cgroup."""
    root = tmp_path / "cg"
    root.mkdir(parents=True)
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content + "\n", encoding="ascii")
    self_cgroup = tmp_path / "self_cgroup"
    self_cgroup.write_text(self_line + "\n", encoding="ascii")
    return root, self_cgroup


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARS and k != THREADS_ENV}
    return {**env, **extra}


def test_threads_is_a_foundation_module() -> None:
    """graphrec.threads imports the standard library and graphrec.errors only (torch only inside
    configure_torch), so the CLI and serving can use it without torch or numpy."""
    from test_architecture import _imports_outside, imports_of

    path = ROOT / "graphrec" / "threads.py"
    outside = _imports_outside(path, {"configure_torch"})
    assert {m for m in outside if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("graphrec.errors")} == set()
    assert "torch" in imports_of(path)  # inside configure_torch


# -- how many cores ---------------------------------------------------------------------------
def test_available_cores_is_the_affinity_mask_without_a_quota(tmp_path: Path) -> None:
    root, self_cgroup = _cgroup(tmp_path, "0::/", {})
    assert cgroup_cpu_limit(root, self_cgroup) is None
    assert available_cores(cgroup_root=root, self_cgroup=self_cgroup) == len(os.sched_getaffinity(0))


def test_available_cores_respects_sched_setaffinity(tmp_path: Path) -> None:
    """A process pinned to one CPU (``taskset -c N``) gets one thread, whatever the host has."""
    root, self_cgroup = _cgroup(tmp_path, "0::/", {})
    cpu = min(os.sched_getaffinity(0))
    code = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        os.sched_setaffinity(0, {{{cpu}}})
        from graphrec.threads import available_cores, default_threads
        print(available_cores(cgroup_root=Path({str(root)!r}), self_cgroup=Path({str(self_cgroup)!r})), default_threads())
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    pinned, default = res.stdout.split()
    assert pinned == "1"
    assert default == "1"  # the real cgroup can only lower it further


def test_cgroup_v2_quota_caps_the_cores(tmp_path: Path) -> None:
    root, self_cgroup = _cgroup(tmp_path, "0::/", {"cpu.max": "50000 100000"})
    assert cgroup_cpu_limit(root, self_cgroup) == pytest.approx(0.5)
    assert available_cores(cgroup_root=root, self_cgroup=self_cgroup) == 1  # at least one
    root, self_cgroup = _cgroup(tmp_path / "b", "0::/", {"cpu.max": "max 100000"})
    assert cgroup_cpu_limit(root, self_cgroup) is None


def test_cgroup_quota_rounds_up_and_a_parent_limit_counts(tmp_path: Path) -> None:
    """The process sits in ``/jobs/nightly``: its own ``cpu.max`` is unlimited but its parent's
    allows 1.5 cores, which runs two threads (rounded up), never more than the affinity mask."""
    root, self_cgroup = _cgroup(tmp_path, "0::/jobs/nightly", {"jobs/cpu.max": "150000 100000", "jobs/nightly/cpu.max": "max 100000"})
    assert cgroup_cpu_limit(root, self_cgroup) == pytest.approx(1.5)
    assert available_cores(cgroup_root=root, self_cgroup=self_cgroup) == min(2, len(os.sched_getaffinity(0)))


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    """cgroup v1 as docker mounts it: the container's cgroup at the mount root, while
    /proc/self/cgroup still names the host path (``/docker/<id>``)."""
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "100000", "cpu,cpuacct/cpu.cfs_period_us": "100000"}
    root, self_cgroup = _cgroup(tmp_path, "4:cpu,cpuacct:/docker/abc", files)
    assert cgroup_cpu_limit(root, self_cgroup) == pytest.approx(1.0)
    assert available_cores(cgroup_root=root, self_cgroup=self_cgroup) == 1
    unlimited = {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}
    root, self_cgroup = _cgroup(tmp_path / "b", "4:cpu:/", unlimited)
    assert cgroup_cpu_limit(root, self_cgroup) is None


def test_unreadable_cgroup_files_mean_no_limit(tmp_path: Path) -> None:
    root, self_cgroup = _cgroup(tmp_path, "garbage", {"cpu.max": "not numbers"})
    assert cgroup_cpu_limit(root, self_cgroup) is None
    assert cgroup_cpu_limit(tmp_path / "missing", tmp_path / "missing_self") is None


# -- the environment override -----------------------------------------------------------------
def test_env_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_threads() == 3
    monkeypatch.setenv(THREADS_ENV, "0")
    with pytest.raises(InputError, match=THREADS_ENV):
        default_threads()
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(InputError, match=THREADS_ENV):
        default_threads()
    monkeypatch.delenv(THREADS_ENV)
    assert default_threads() == available_cores()


def test_a_config_resolves_threads_when_training_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.linkpred.config import LinkPredConfig

    monkeypatch.setenv(THREADS_ENV, "3")
    cfg = BotConfig(seed=1)
    assert cfg.threads is None
    assert resolve_config_threads(cfg).threads == 3 and resolve_config_threads(cfg).seed == 1
    explicit = BotConfig(threads=1)
    assert resolve_config_threads(explicit) is explicit
    assert resolve_config_threads(LinkPredConfig(threads=2)).threads == 2


def test_invalid_env_is_a_one_line_cli_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["train", "siamese"], env={"GRAPHREC_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", THREADS_ENV: "-2"})
    assert r.exit_code == 2 and r.output.strip() == f"error: {THREADS_ENV} must be a positive integer, got '-2'"


# -- passive waiting --------------------------------------------------------------------------
def test_passive_waiting_is_set_by_import_graphrec() -> None:
    code = "import os, graphrec; print(*(os.environ.get(k, '-') for k in %r)); import torch; print(graphrec.threads.waiting_is_passive())" % (WAIT_VARS,)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["PASSIVE", "0", "0", "True"]


def test_an_explicit_wait_policy_wins() -> None:
    code = "import os, graphrec; print(*(os.environ.get(k, '-') for k in %r)); print(graphrec.threads.waiting_is_passive())" % (WAIT_VARS,)
    env = _clean_env(OMP_WAIT_POLICY="ACTIVE")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ACTIVE", "-", "-", "False"]
    # set only the unset ones when no policy is chosen
    environ = {"KMP_BLOCKTIME": "50"}
    assert use_passive_waiting(environ) == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}
    assert environ["KMP_BLOCKTIME"] == "50"


def test_torch_imported_before_graphrec_is_reported() -> None:
    """The runtime read its settings at torch's import: graphrec's setting comes too late."""
    code = "import torch, graphrec.threads as t, os; print(os.environ['OMP_WAIT_POLICY'], t.waiting_is_passive())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["PASSIVE", "False"]


# -- --threads reaches the recorded parameters --------------------------------------------------
@pytest.fixture(scope="module")
def labelled_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A 150-user clustered graph with 30 injected bots, 40% of users labelled."""
    from graphrec.store.store import GraphStore
    from graphrec.tasks.bots.inject import honest_graph, inject_bot_region, load_into_store, sample_labels

    root = tmp_path_factory.mktemp("threads")
    url = f"sqlite:///{root / 'g.db'}"
    store = GraphStore(url, home=root / "home")
    store.initialize()
    injected = inject_bot_region(honest_graph(150, seed=0), n_bots=30, attack_edges=2, seed=0)
    load_into_store(store, injected, sample_labels(injected.is_bot, 0.4, 0))
    return {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(root / "home")}


def _train(env: dict[str, str], *args: str) -> dict[str, object]:
    r = CliRunner().invoke(cli, ["train", *args, "--format", "json"], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def _recorded_threads(env: dict[str, str], kind: str, version: str) -> tuple[object, object]:
    """``threads`` in the manifest's params and in the ``model_runs`` row of one version."""
    from graphrec.store.store import GraphStore

    manifest = artifacts.load(Path(env["GRAPHREC_HOME"]), kind, version).manifest
    store = GraphStore(env["GRAPHREC_DATABASE_URL"], home=env["GRAPHREC_HOME"])
    with store.read() as conn:
        params = conn.execute(text("SELECT params FROM model_runs WHERE kind = :k AND version = :v"), {"k": kind, "v": version}).scalar_one()
    params = json.loads(params) if isinstance(params, str) else params
    return manifest["params"]["threads"], params["threads"]


@pytest.mark.parametrize(
    ("command", "kind", "args"),
    [
        ("siamese", "siamese", ("--epochs", "1")),
        ("bots", "bot", ("--epochs", "5", "--folds", "2")),
        ("anomaly", "anomaly", ("--kind", "vanilla")),
    ],
)
def test_threads_option_reaches_the_recorded_params(labelled_store: dict[str, str], command: str, kind: str, args: tuple[str, ...],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    out = _train(labelled_store, command, *args, "--threads", "1")
    assert _recorded_threads(labelled_store, kind, str(out["version"])) == (1, 1)
    # no --threads: the default, one per available core (here set through the environment)
    out = _train({**labelled_store, THREADS_ENV: "2"}, command, *args)
    assert _recorded_threads(labelled_store, kind, str(out["version"])) == (2, 2)


def test_train_linkpred_has_threads(labelled_store: dict[str, str]) -> None:
    out = _train(labelled_store, "linkpred", "--epochs", "1", "--gnn-dim", "0", "--threads", "1")
    assert _recorded_threads(labelled_store, "linkpred", str(out["version"])) == (1, 1)


def test_library_default_is_recorded_as_the_number_used(labelled_store: dict[str, str]) -> None:
    """A config left at threads=None trains with one thread per available core and records it."""
    from graphrec.store.store import GraphStore
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.siamese.config import SiameseConfig
    from graphrec.tasks.siamese.train import SiameseTask

    store = GraphStore(labelled_store["GRAPHREC_DATABASE_URL"], home=labelled_store["GRAPHREC_HOME"])
    reg = train_and_register(store, SiameseTask(), SiameseConfig(epochs=1))
    assert reg.manifest["params"]["threads"] == reg.run.params["threads"] == default_threads()
    assert np.isfinite(reg.manifest["training"]["train_loss"][-1])
