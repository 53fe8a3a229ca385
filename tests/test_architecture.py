"""The architecture rules of ARCHITECTURE.md, as tests: they fail when a change breaks a layer.

Imports are read from the source (every ``import`` statement, also those inside functions; the
ones under ``if TYPE_CHECKING:`` are type hints, not imports, and are skipped). The serving path is
also checked at run time, in a subprocess where importing torch or torch_geometric fails.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "graphrec"
TASKS = sorted(p.name for p in (PKG / "tasks").iterdir() if p.is_dir() and (p / "__init__.py").exists())


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, tree: ast.AST | None = None) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved); ``tree``
    overrides the parsed source."""
    if tree is None:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = ".".join(package[: len(package) - child.level + 1])
                    mod = f"{base}.{child.module}" if child.module else base
                else:
                    mod = child.module or ""
                found.add(mod)
                found.update(f"{mod}.{alias.name}" for alias in child.names)
            visit(child)

    visit(tree)
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _violations(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for f in _files(folder):
        for mod in sorted(imports_of(f)):
            if any(mod == bad or mod.startswith(bad + ".") for bad in forbidden):
                out.append(f"{f.relative_to(ROOT)} imports {mod}")
    return out


def test_the_import_scanner_sees_function_level_imports() -> None:
    source = ("import numpy\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n"
              "def f():\n    from graphrec.tasks.bots import train\n")
    found = imports_of(PKG / "core" / "probe.py", ast.parse(source))
    assert "graphrec.tasks.bots.train" in found and "numpy" in found
    assert "torch" not in found  # a type hint only
    assert "graphrec.tasks.bots.train" not in _imports_outside_source(source, {"f"})


def test_generative_never_imports_graphrec() -> None:
    assert _violations(ROOT / "generative", ("graphrec",)) == []


#: The one declared exception to "the store imports no torch": a snapshot converts itself to
#: PyTorch Geometric / torch types on request, importing them inside these methods only.
SNAPSHOT_CONVERSIONS = {"to_pyg", "adjacency_tensor"}


def _imports_outside(path: Path, allowed_functions: set[str]) -> set[str]:
    """Imports of ``path`` (as :func:`imports_of` sees them) except those inside the functions
    named ``allowed_functions``."""
    return _imports_outside_source(path.read_text(encoding="utf-8"), allowed_functions, path)


def _imports_outside_source(source: str, allowed_functions: set[str], path: Path = PKG / "probe.py") -> set[str]:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in allowed_functions:
            node.body = [ast.Pass()]
    return imports_of(path, tree)


def test_store_knows_no_models_and_no_tasks() -> None:
    forbidden = ("graphrec.tasks", "graphrec.nn", "graphrec.serving", "graphrec.jobs", "graphrec.cli", "graphrec.core", "generative")
    assert _violations(PKG / "store", forbidden) == []
    torch_users = []
    for f in _files(PKG / "store"):
        allowed = SNAPSHOT_CONVERSIONS if f.name == "snapshot.py" else set()
        bad = {m for m in _imports_outside(f, allowed) if m.split(".")[0] in ("torch", "torch_geometric")}
        torch_users += [f"{f.relative_to(ROOT)} imports {m}" for m in sorted(bad)]
    assert torch_users == []


def test_store_sql_has_no_task_semantics() -> None:
    """The store serves generic scoring runs keyed by kind: no task's kind is spelled in it."""
    offenders = []
    for f in _files(PKG / "store"):
        text = f.read_text(encoding="utf-8")
        for word in ("kind = 'bot'", "'bot'", '"bot"', "'anomaly'", '"anomaly"'):
            if word in text:
                offenders.append(f"{f.relative_to(ROOT)}: {word}")
    assert offenders == []


def test_core_and_nn_stay_below_the_tasks() -> None:
    upper = ("graphrec.tasks", "graphrec.serving", "graphrec.jobs", "graphrec.cli", "graphrec.distributed")
    assert _violations(PKG / "core", upper + ("graphrec.store.store", "graphrec.nn")) == []
    assert _violations(PKG / "nn", upper + ("graphrec.store", "graphrec.core.index")) == []


def test_nn_modules_do_no_file_or_database_io() -> None:
    io_modules = ("sqlalchemy", "graphrec.store", "graphrec.artifacts", "pathlib", "os", "shutil", "json", "safetensors", "pickle")
    assert _violations(PKG / "nn", io_modules) == []
    calls = []
    for f in _files(PKG / "nn"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                if name in ("open", "save", "load", "read_text", "write_text"):
                    calls.append(f"{f.relative_to(ROOT)}:{node.lineno} calls {name}()")
    assert calls == []


@pytest.mark.parametrize("task", TASKS)
def test_a_task_never_imports_another_task(task: str) -> None:
    others = tuple(f"graphrec.tasks.{t}" for t in TASKS if t != task)
    upper = ("graphrec.serving", "graphrec.jobs", "graphrec.cli", "graphrec.tasks.registry", "graphrec.distributed")
    assert _violations(PKG / "tasks" / task, others + upper) == []


def test_every_task_package_has_the_same_modules() -> None:
    for task in TASKS:
        have = {p.stem for p in (PKG / "tasks" / task).glob("*.py")}
        assert {"__init__", "config", "train", "model", "evaluate"} <= have, f"tasks/{task} has {sorted(have)}"


def test_every_registered_task_follows_the_protocol() -> None:
    from graphrec.tasks.base import Model, Task, TaskConfig
    from graphrec.tasks.registry import TASKS as REGISTERED
    from graphrec.tasks.registry import task_class

    assert sorted(REGISTERED) == TASKS
    for name in REGISTERED:
        cls = task_class(name)
        assert issubclass(cls, Task) and cls.name == name
        assert issubclass(cls.config_type, TaskConfig)
        assert issubclass(cls.model_type, Model) and cls.model_type.kind == cls.kind


def test_cli_holds_no_sql_no_transactions_and_no_model_logic() -> None:
    forbidden = ("sqlalchemy", "numpy", "torch", "torch_geometric", "scipy", "graphrec.store.scores", "graphrec.store.exporters",
                 "graphrec.store.migrate", "graphrec.store.schema", "graphrec.artifacts", "graphrec.nn")
    assert _violations(PKG / "cli", forbidden) == []
    assert _sql_and_transactions(PKG / "cli") == []


def _sql_and_transactions(folder: Path) -> list[str]:
    """SQL text in string constants, and ``with x.read()/write()/begin()/connect()`` blocks."""
    offenders = []
    for f in _files(folder):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words = set(node.value.upper().split())
                if {"SELECT", "FROM"} <= words or {"INSERT", "INTO"} <= words or {"DELETE", "FROM"} <= words:
                    offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}: SQL text")
            if isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    call = item.context_expr
                    if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in ("read", "write", "begin", "connect"):
                        offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}: opens a transaction")
    return offenders


def test_the_http_service_parses_calls_one_library_function_and_returns() -> None:
    """graphrec.service holds no SQL, no transactions, no model code: routes call the library."""
    forbidden = ("sqlalchemy", "numpy", "torch", "torch_geometric", "scipy", "faiss", "graphrec.store.scores", "graphrec.store.exporters",
                 "graphrec.store.migrate", "graphrec.store.schema", "graphrec.store.bulk", "graphrec.store.loader", "graphrec.artifacts",
                 "graphrec.nn", "graphrec.tasks", "graphrec.core", "graphrec.jobs", "graphrec.cli")
    assert _violations(PKG / "service", forbidden) == []
    assert _sql_and_transactions(PKG / "service") == []
    # and the serving layer does not reach up into the service
    assert _violations(PKG / "serving", ("graphrec.service", "graphrec.client")) == []


_BLOCKER = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torch_geometric"):
                raise ImportError(f"blocked on the serving path: {name}")
            return None
    sys.meta_path.insert(0, _Block())
    """
)


def test_serving_modules_import_without_torch() -> None:
    code = _BLOCKER + textwrap.dedent(
        """
        import graphrec.serving.recommend, graphrec.serving.similar, graphrec.serving.scores
        import graphrec.cli
        print("ok")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_the_http_client_loads_no_models_and_no_store() -> None:
    """graphrec.client is for backends that talk to the service: httpx, the service's pydantic
    schemas and graphrec.errors only, never the model stack or the store."""
    forbidden = ("torch", "torch_geometric", "numpy", "sqlalchemy", "faiss", "graphrec.store", "graphrec.serving",
                 "graphrec.tasks", "graphrec.core", "graphrec.nn")
    found = imports_of(PKG / "client.py")
    assert sorted(m for m in found if any(m == bad or m.startswith(bad + ".") for bad in forbidden)) == []
    code = _BLOCKER + textwrap.dedent(
        """
        import graphrec.client
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "sqlalchemy", "faiss", "fastapi")
                       or m.startswith(("graphrec.store", "graphrec.serving", "graphrec.tasks", "graphrec.core", "graphrec.nn")))
        print("ok" if not heavy else heavy)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout + res.stderr


def test_the_http_service_answers_without_torch(trained_home: dict[str, str]) -> None:
    """A server process never imports torch: the app is built, loads the served models and
    answers recommendations and similar users with torch blocked."""
    env = {**os.environ, **trained_home}
    code = _BLOCKER + textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
        from graphrec.service.app import create_app
        with TestClient(create_app(auth=False, watch_seconds=0)) as c:
            for path in ("/v1/users/0/recommendations?k=5", "/v1/users/0/similar?k=5", "/readyz"):
                r = c.get(path)
                assert r.status_code == 200, (path, r.text)
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]


def test_serving_commands_run_without_torch(trained_home: dict[str, str]) -> None:
    """recommend and similar answer real requests in a process where torch cannot be imported."""
    env = {**os.environ, **trained_home}
    for args in (["recommend", "--user", "0", "-k", "5", "--format", "json"], ["similar", "--user", "0", "-k", "5", "--format", "json"]):
        code = _BLOCKER + f"from graphrec.cli import main\nsys.argv = ['graphrec'] + {args!r}\nmain()\n"
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
        assert res.returncode == 0, res.stderr
        assert '"user": "0"' in res.stdout


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A small community graph with binary profiles, a link model and a Siamese model trained on it."""
    import numpy as np

    from graphrec.store.store import GraphStore
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.registry import get_task

    root = tmp_path_factory.mktemp("arch")
    rng = np.random.default_rng(0)
    n, groups = 240, 6
    group = np.arange(n) % groups
    lines = []
    for u in range(n):
        for v in range(u + 1, n):
            if rng.random() < (0.12 if group[u] == group[v] else 0.004):
                lines.append(f"{u} {v}")
    (root / "edges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    feats = (rng.random((n, 12)) < 0.1) | (np.eye(groups, 12, dtype=bool)[group] & (rng.random((n, 1)) < 0.8))
    rows = ["id," + ",".join(f"f{j}" for j in range(12))] + [f"{u}," + ",".join(str(int(x)) for x in feats[u]) for u in range(n)]
    (root / "users.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    url = f"sqlite:///{root / 'g.db'}"
    store = GraphStore(url, home=root / "home")
    store.initialize()
    store.import_users(root / "users.csv")
    store.import_edges(root / "edges.txt")
    for name in ("linkpred", "siamese"):
        task = get_task(name)
        train_and_register(store, task, task.config_type(seed=0, epochs=1))  # type: ignore[call-arg]
    return {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(root / "home")}


def test_the_distributed_path_stays_optional_and_below_the_front_doors() -> None:
    """graphrec.distributed (Ray) sits above the tasks and the store and below the CLI, the jobs
    and the service: it never imports the front doors, and nothing imports ray or pyarrow except
    inside graphrec.distributed, inside functions, so the single-process path runs without the
    ``distributed`` extra."""
    assert _violations(PKG / "distributed", ("graphrec.cli", "graphrec.service", "graphrec.client")) == []
    top_level = []
    for f in _files(PKG):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in tree.body:
            mods = ({a.name for a in node.names} if isinstance(node, ast.Import) else
                    {node.module or ""} if isinstance(node, ast.ImportFrom) else set())
            if any(m.split(".")[0] in ("ray", "pyarrow") for m in mods):
                top_level.append(f"{f.relative_to(ROOT)} imports {sorted(mods)} at module level")
    assert top_level == []
    outside = [v for v in _violations(PKG, ("ray", "pyarrow")) if not v.startswith("graphrec/distributed/")]
    assert outside == []
    code = "import sys, graphrec, graphrec.cli, graphrec.jobs.nightly, graphrec.jobs.engines, graphrec.distributed.engine; " \
           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pyarrow')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_reports_sit_above_the_tasks_and_below_the_front_doors() -> None:
    """graphrec.reports reads tasks, store and artifacts; no task, core or store module imports it,
    it imports no front door, and importing it loads neither matplotlib nor torch."""
    assert _violations(PKG / "reports", ("graphrec.cli", "graphrec.service", "graphrec.client", "graphrec.distributed")) == []
    for below in ("tasks", "core", "store", "nn", "serving", "jobs"):
        assert _violations(PKG / below, ("graphrec.reports",)) == []
    code = "import sys, graphrec.reports; bad = [m for m in ('matplotlib', 'torch') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
