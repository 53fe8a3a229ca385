#!/usr/bin/env python
"""Training on a busy machine (issue 13): every ``graphrec train`` command on ego-Facebook, idle
and beside k competing CPU-bound processes.

For each command (``train linkpred``, ``train bots``, ``train siamese``, ``train anomaly``) and
each load k (default 0, 1 and 3), the benchmark starts k competitors (pure-Python busy loops, one
process each), runs the command as a fresh ``graphrec`` CLI process with its default options and
default threads (one per available core, :mod:`graphrec.threads`), records its wall time, and
stops the competitors (also on Ctrl-C, an exception or SIGTERM; a competitor whose parent dies
stops by itself). Target: under k competitors, wall time <= (k + 1) x the idle wall time: with k
other CPU-bound processes on the machine, a fair scheduler gives the training about 1/(k+1) of
the cores it had, so anything slower is lost to the training's own threads waiting on each other
(busy-waiting OpenMP barriers, the failure this issue is about).

Data: ``train linkpred``, ``train siamese`` and ``train anomaly`` run on a store holding the
bundled ego-Facebook graph (``graphrec import ego-facebook``). ``train bots`` needs labels: its
store holds ego-Facebook plus an injected bot region (400 bots, 2 attack edges each, 5% of all
users labelled, stratified: the setting of ``benchmarks/bench_bots_injection.py``,
:func:`graphrec.tasks.bots.inject.inject_bot_region`). Building the stores is not timed.

Printed: the machine (CPU model, nproc, the cores this process may use, torch's wait policy) and
the load average before each run beside each figure; ``--json PATH`` writes every figure.

    .venv/bin/python benchmarks/bench_training.py                 # defaults; about 10-15 minutes idle
    .venv/bin/python benchmarks/bench_training.py --quick         # 1-2 epochs each: a smoke run
    .venv/bin/python benchmarks/bench_training.py --commands linkpred --loads 0,1 --repeats 3
    OMP_WAIT_POLICY=ACTIVE .venv/bin/python benchmarks/bench_training.py   # the spinning pool, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: ``graphrec train`` arguments of each command: the defaults, and ``--quick`` (1-2 epochs).
COMMANDS: dict[str, dict[str, list[str]]] = {
    "linkpred": {"full": ["--seed", "0"], "quick": ["--seed", "0", "--epochs", "1"]},
    "bots": {"full": ["--seed", "0"], "quick": ["--seed", "0", "--epochs", "10", "--folds", "2"]},
    "siamese": {"full": ["--seed", "0"], "quick": ["--seed", "0", "--epochs", "1"]},
    "anomaly": {"full": ["--seed", "0"], "quick": ["--seed", "0", "--kind", "vanilla"]},
}

#: A CPU-bound competitor: a pure-Python busy loop that stops when its parent (this benchmark)
#: is gone, so not even a SIGKILL of the benchmark leaves it spinning.
COMPETITOR = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(200_000):\n        pass\n"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    from graphrec.threads import available_cores, default_threads

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        torch_version = version("torch")
    except Exception:  # pragma: no cover - torch missing
        torch_version = "?"
    return {"cpu": model, "nproc": os.cpu_count(), "available_cores": available_cores(), "default_threads": default_threads(),
            "torch": torch_version, "python": platform.python_version(),
            "wait_policy": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")},
            "graphrec_threads_env": os.environ.get("GRAPHREC_THREADS")}


def graphrec_cmd() -> list[str]:
    """The ``graphrec`` console script beside this interpreter, else the CLI through ``-c``."""
    script = Path(sys.executable).with_name("graphrec")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from graphrec.cli import main; main()"]


def setup_stores(work: Path, *, bots: int, attack_edges: int, label_fraction: float) -> dict[str, dict[str, str]]:
    """Two stores under ``work``: ego-Facebook (``plain``), and ego-Facebook with an injected,
    partly labelled bot region (``labelled``); their environments for the CLI."""
    import numpy as np

    from graphrec.core.graph import Graph
    from graphrec.datasets import load_ego_facebook
    from graphrec.store.store import GraphStore
    from graphrec.tasks.bots.inject import inject_bot_region, load_into_store, sample_labels

    envs = {}
    for name in ("plain", "labelled"):
        folder = work / name
        folder.mkdir(parents=True)
        envs[name] = {"GRAPHREC_DATABASE_URL": f"sqlite:///{folder / 'graph.db'}", "GRAPHREC_HOME": str(folder / "home")}
    plain_env = {**os.environ, **envs["plain"]}
    for args in (["db", "upgrade"], ["import", "ego-facebook"]):
        subprocess.run(graphrec_cmd() + args, check=True, env=plain_env, stdout=subprocess.DEVNULL)
    data = load_ego_facebook()
    idx = {int(u): i for i, u in enumerate(data.user_ids.tolist())}
    edges = np.vectorize(idx.__getitem__)(data.edges) if data.edges.size else data.edges
    honest = Graph.from_edges(edges, data.features, list(data.feature_names))
    injected = inject_bot_region(honest, n_bots=bots, attack_edges=attack_edges, seed=0)
    store = GraphStore(envs["labelled"]["GRAPHREC_DATABASE_URL"], home=envs["labelled"]["GRAPHREC_HOME"])
    store.initialize()
    load_into_store(store, injected, sample_labels(injected.is_bot, label_fraction, 0))
    store.engine.dispose()
    return envs


@contextmanager
def competitors(k: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``k`` busy-loop processes for the duration of the block, always stopped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(k):
            procs.append(subprocess.Popen([sys.executable, "-c", COMPETITOR], stdin=subprocess.DEVNULL))
        time.sleep(0.5 if k else 0.0)  # let them reach the scheduler
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a competitor exited at once (code {p.returncode})")
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def train_once(command: str, args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One ``graphrec train COMMAND ARGS --format json`` process: its wall time and output."""
    cmd = graphrec_cmd() + ["train", command, *args, "--format", "json"]
    load = os.getloadavg()[0]
    t = time.perf_counter()
    try:
        res = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"wall_s": None, "timeout": True, "load_before": load}
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({res.returncode}):\n{res.stderr[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "train_s": out.get("seconds", out.get("fit_seconds")), "load_before": load, "load_after": os.getloadavg()[0], "version": out.get("version")}


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commands", default=",".join(COMMANDS), help="train commands to measure (comma-separated)")
    ap.add_argument("--loads", default="0,1,3", help="numbers of competing CPU-bound processes (0: idle; comma-separated)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per command and load; the median is reported")
    ap.add_argument("--quick", action="store_true", help="1-2 epochs per command: a smoke run, not figures for the record")
    ap.add_argument("--bots", type=int, default=400, help="injected bots of the labelled store")
    ap.add_argument("--attack-edges", type=int, default=2)
    ap.add_argument("--label-fraction", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds before one train run counts as not finished")
    ap.add_argument("--workdir", type=Path, help="keep the stores here (default: a temporary folder, removed at the end)")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = sorted(set(commands) - set(COMMANDS))
    if unknown:
        ap.error(f"unknown commands {unknown}: choose from {', '.join(COMMANDS)}")
    loads = sorted({int(k) for k in args.loads.split(",")} | {0})
    _stop_on_sigterm()

    import graphrec  # noqa: F401  (sets the OpenMP wait policy this process's children inherit)

    info = machine()
    print(f"machine: {info['cpu']}, nproc {info['nproc']}, available cores {info['available_cores']}, default threads "
          f"{info['default_threads']}, torch {info['torch']}, python {info['python']}")
    print(f"wait policy: {info['wait_policy']}  GRAPHREC_THREADS={info['graphrec_threads_env']}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    mode = "quick" if args.quick else "full"
    work = args.workdir or Path(tempfile.mkdtemp(prefix="graphrec-bench-training-"))
    results: dict[str, dict[int, list[dict[str, Any]]]] = {}
    try:
        t = time.perf_counter()
        envs = setup_stores(work, bots=args.bots, attack_edges=args.attack_edges, label_fraction=args.label_fraction)
        print(f"stores built in {time.perf_counter() - t:.1f} s under {work}")
        for command in commands:
            env = envs["labelled" if command == "bots" else "plain"]
            results[command] = {}
            for k in loads:
                runs = []
                for r in range(args.repeats):
                    with competitors(k):
                        run = train_once(command, COMMANDS[command][mode], env, args.timeout)
                    runs.append(run)
                    took = "did not finish" if run["wall_s"] is None else f"{run['wall_s']:.1f} s"
                    print(f"  train {command:8s} +{k} competitors, run {r + 1}: {took} (training {run.get('train_s')} s; "
                          f"load before {run['load_before']:.2f})", flush=True)
                results[command][k] = runs
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    def median(runs: list[dict[str, Any]]) -> float | None:
        walls = [r["wall_s"] for r in runs if r["wall_s"] is not None]
        return statistics.median(walls) if len(walls) == len(runs) else None

    others = [k for k in loads if k]
    head = f"{'command':10s} {'idle s':>8s} " + " ".join(f"{'+' + str(k) + ' s':>8s} {'ratio':>6s} {'target':>7s} {'met':>4s}" for k in others)
    print(f"\n== wall time of `graphrec train COMMAND` ({mode}), median of {args.repeats}; target under k competitors: <= (k + 1) x idle ==")
    print(head)
    summary: dict[str, Any] = {}
    for command, by_load in results.items():
        idle = median(by_load[0])
        cells: list[str] = []
        row: dict[str, Any] = {"idle_s": idle}
        for k in others:
            wall = median(by_load[k])
            ratio = wall / idle if wall is not None and idle else None
            met = ratio is not None and ratio <= k + 1
            row[f"+{k}"] = {"wall_s": wall, "ratio": ratio, "target": f"<= {k + 1}x", "met": met}
            cells.append(f"{_fmt(wall):>8s} {_fmt(ratio, 2):>6s} {'<= ' + str(k + 1) + 'x':>7s} {'yes' if met else 'NO':>4s}")
        summary[command] = row
        print(f"{command:10s} {_fmt(idle):>8s} " + " ".join(cells))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "mode": mode, "loads": loads, "runs": results, "summary": summary}, indent=1) + "\n",
                             encoding="utf-8")


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


if __name__ == "__main__":
    main()
