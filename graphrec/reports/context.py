"""What the sections of a report read, loaded once per report: the store, ``GRAPHREC_HOME``, the
real users' graph, the served models' manifests and the latest evaluation records."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphrec.reports.evals import latest_eval

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.core.graph import Graph
    from graphrec.store.store import GraphStore


class ReportContext:
    """Read-only access to what a report is built from (cached: one snapshot per report)."""

    def __init__(self, store: "GraphStore", home: Path | None = None) -> None:
        self.store = store
        self.home = Path(home) if home is not None else Path(store.settings.home)

    @cached_property
    def graph(self) -> "Graph":
        """The real users' graph (synthetic users left out), as training sees it."""
        from graphrec.core.graph import Graph

        return Graph.from_snapshot(self.store.snapshot(include_synthetic=False), data_version=False)

    @cached_property
    def graph_with_synthetic(self) -> "Graph":
        """Every active user, synthetic ones flagged (``is_synthetic``)."""
        from graphrec.core.graph import Graph

        return Graph.from_snapshot(self.store.snapshot(include_synthetic=True), data_version=False)

    def manifest(self, kind: str) -> dict[str, Any] | None:
        """The served (``LATEST``) version's manifest of model ``kind`` (bot, linkpred, siamese,
        anomaly, synth), with its ``version``; None when none is served."""
        from graphrec import artifacts

        version = artifacts.latest_version(self.home, kind)
        if version is None:
            return None
        return {**artifacts.read_manifest(self.home, kind, version), "version": version}

    def latest_eval(self, kind: str) -> dict[str, Any] | None:
        """The newest ``graphrec eval <kind>`` record (:mod:`graphrec.reports.evals`), or None."""
        return latest_eval(self.home, kind)
