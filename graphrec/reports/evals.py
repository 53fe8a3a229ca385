"""Evaluation records: every ``graphrec eval ...`` run is kept under
``GRAPHREC_HOME/evals/<kind>/<UTC time>.json`` (the printed figures plus the curve data the
report draws: per-method scores on the test users, recall at every K, ...), so ``graphrec
report`` draws the latest evaluation of each kind without running it again.

A record is ``{"kind", "created_at", "result": <the evaluation's as_dict()>, "curves": {...}}``,
written atomically (temporary file, then rename). :func:`latest_eval` returns the newest, or
None when that kind was never evaluated.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

#: the kinds ``graphrec eval`` has
EVAL_KINDS = ("linkpred", "bots", "siamese")


def _jsonable(value: Any) -> Any:
    """Plain JSON: numpy scalars and arrays to Python numbers and lists, NaN and infinities to None."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def eval_dir(home: Path, kind: str) -> Path:
    """Where the records of ``kind`` evaluations live."""
    if kind not in EVAL_KINDS:
        raise ValueError(f"unknown evaluation kind {kind!r}: one of {', '.join(EVAL_KINDS)}")
    return Path(home) / "evals" / kind


def record_eval(home: Path, kind: str, result: dict[str, Any], curves: dict[str, Any] | None = None) -> Path:
    """Keep one evaluation's ``result`` (its ``as_dict()``) and ``curves``; returns the file."""
    now = dt.datetime.now(dt.timezone.utc)
    folder = eval_dir(home, kind)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{now.strftime('%Y%m%dT%H%M%S%f')}.json"
    record = {"kind": kind, "created_at": now.isoformat(timespec="seconds"), "result": _jsonable(result), "curves": _jsonable(curves or {})}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, path)
    return path


def latest_eval(home: Path, kind: str) -> dict[str, Any] | None:
    """The newest record of a ``kind`` evaluation, or None."""
    folder = eval_dir(home, kind)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return json.loads(files[-1].read_text(encoding="utf-8")) if files else None
