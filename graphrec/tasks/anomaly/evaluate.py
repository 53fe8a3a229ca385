"""Evaluation on injected anomalies, with the IsolationForest baseline in the same run.

The protocol of PyGOD / BOND: inject structural and contextual anomalies
(:func:`graphrec.tasks.anomaly.inject.inject_anomalies`) into a graph, fit each detector without
labels, and measure ROC-AUC and average precision over every user, plus the ROC-AUC on each
anomaly type (normal users against that type only). The baseline is scikit-learn's
IsolationForest (Liu, Ting & Zhou, ICDM 2008) on the same table the feature autoencoders see:
profile columns plus degree, clustering and mean friend degree.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.graph import Graph
from graphrec.progress import track
from graphrec.tasks.anomaly.detector import DEFAULT_KIND, make_detector, node_table
from graphrec.tasks.anomaly.inject import Injection, inject_anomalies

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)


@dataclass
class DetectorResult:
    """One detector's figures on one injected graph."""

    detector: str
    roc_auc: float
    average_precision: float
    roc_auc_structural: float
    roc_auc_contextual: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def isolation_forest_scores(graph: Graph, seed: int = 0) -> np.ndarray:
    """Anomaly score (higher = more anomalous) of the IsolationForest baseline (300 trees) on
    the :func:`~graphrec.tasks.anomaly.detector.node_table`."""
    from sklearn.ensemble import IsolationForest

    table, _ = node_table(graph, seed)
    forest = IsolationForest(n_estimators=300, random_state=seed).fit(table)
    return -forest.score_samples(table)


def score_result(name: str, score: np.ndarray, inj: Injection, seconds: float) -> DetectorResult:
    """ROC-AUC and average precision of ``score`` against the injected truth, overall and per
    anomaly type (normal users against that type only)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = inj.is_anomaly
    st, ct = ~y | inj.structural, ~y | inj.contextual
    return DetectorResult(name, float(roc_auc_score(y, score)), float(average_precision_score(y, score)),
                          float(roc_auc_score(y[st], score[st])) if inj.structural.any() else float("nan"),
                          float(roc_auc_score(y[ct], score[ct])) if inj.contextual.any() else float("nan"), seconds)


def evaluate_injection(
    graph: Graph,
    *,
    kinds: tuple[str, ...] = (DEFAULT_KIND,),
    n_cliques: int = 10,
    clique_size: int = 15,
    n_contextual: int = 120,
    seed: int = 0,
    threads: int | None = None,
) -> tuple[list[DetectorResult], Injection]:
    """Inject anomalies into ``graph`` (seeded) and score the IsolationForest baseline and each of
    ``kinds`` (default hyper-parameters, ``seed``) on the injected graph, without labels."""
    inj = inject_anomalies(graph, n_cliques=n_cliques, clique_size=clique_size, n_contextual=n_contextual, seed=seed)
    graph = inj.graph
    log.info("injected %d anomalous users into %d (seed %d)", int(inj.is_anomaly.sum()), graph.num_nodes, seed)
    t = time.perf_counter()
    results = [score_result("iforest", isolation_forest_scores(graph, seed), inj, time.perf_counter() - t)]
    for kind in track(list(kinds), "eval anomaly: detectors", total=len(kinds), unit="detector"):
        t = time.perf_counter()
        det = make_detector(kind, seed=seed, threads=threads).fit(graph)
        assert det.decision_score_ is not None
        results.append(score_result(kind, det.decision_score_, inj, time.perf_counter() - t))
    return results, inj


def evaluate_from_store(store: "GraphStore", *, kinds: tuple[str, ...] = (DEFAULT_KIND,), n_cliques: int = 10, clique_size: int = 15,
                        n_contextual: int = 120, seed: int = 0, threads: int | None = None,
                        include_synthetic: bool = False) -> list[DetectorResult]:
    """The injection evaluation of :func:`evaluate_injection` on the store's current graph of real
    users (synthetic users only with ``include_synthetic``): the anomalies are planted in a copy,
    the store is not changed."""
    graph = Graph.from_snapshot(store.snapshot(include_synthetic=include_synthetic), data_version=False)
    results, _ = evaluate_injection(graph, kinds=kinds, n_cliques=n_cliques, clique_size=clique_size, n_contextual=n_contextual,
                                    seed=seed, threads=threads)
    return results
