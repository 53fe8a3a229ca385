"""Is this server process ready to take traffic? (``GET /readyz``)

Ready when the store answers, its schema is the one this code expects, and every model that
serves users and is trained (``LATEST`` exists) is loaded in this process. A newer version that
was refused does not make a worker unready while an older one still serves: the worker answers,
and ``/v1/models`` lists the refusal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphrec.errors import expected_error

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.serving.served import ServedModels
    from graphrec.store.store import GraphStore


def _check(ok: bool, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": ok, "message": message, **extra}


def readiness(store: "GraphStore", served: "ServedModels") -> tuple[bool, dict[str, Any]]:
    """(ready, checks): ``store``, ``schema`` and ``models``, each ``{"ok", "message", ...}``."""
    checks: dict[str, Any] = {}
    try:
        status = store.schema_status()
        checks["schema"] = _check(status.up_to_date, f"schema at {status.current or 'empty'}, code expects {status.head}",
                                  current=status.current, head=status.head)
        checks["store"] = _check(True, f"store reachable at revision {store.revision()}" if status.up_to_date else "store reachable")
    except Exception as exc:  # noqa: BLE001 - readiness reports, it never raises
        err = expected_error(exc)
        message = str(err) if err is not None else f"{type(exc).__name__}"
        checks["store"] = _check(False, f"store unreachable: {message}")
        checks["schema"] = _check(False, "unknown: store unreachable")
    state = served.status()
    missing = [kind for kind, latest in state["latest"].items() if latest is not None and state["served"].get(kind) is None]
    checks["models"] = _check(not missing, f"not loaded: {', '.join(missing)}" if missing else "loaded",
                              served=state["served"], latest=state["latest"])
    return all(c["ok"] for c in checks.values()), checks
