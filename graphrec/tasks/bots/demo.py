"""Demo bots for the bundled graph: ``graphrec import ego-facebook --with-demo-bots``.

ego-Facebook has no bot labels, so a newcomer cannot see bot detection work on it. This module
attaches an injected bot region (:func:`~graphrec.tasks.bots.inject.inject_bot_region`: a dense
Sybil-style cluster reaching real users through a few attack edges, profiles cloned from real
users with small changes) and labels a stratified sample of bots and real users
(:func:`~graphrec.tasks.bots.inject.sample_labels`), written in the same transaction as the
dataset. Every injected bot is flagged ``is_synthetic``, so it is never recommended to a real user,
and it carries the bot label only where the sample drew it: the rest are for the model to find.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from graphrec.core.graph import Graph
from graphrec.tasks.bots.inject import inject_bot_region, sample_labels

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.importers import BatchExtension, EdgeBatch, UserBatch
    from graphrec.store.report import ImportReport
    from graphrec.store.store import GraphStore

#: label source of the demo labels (``graphrec import labels`` uses ``import``)
DEMO_LABEL_SOURCE = "demo"
#: first external id of the injected bots (above every ego-Facebook id, still an integer id)
FIRST_BOT_ID = 100_000


@dataclass(frozen=True)
class DemoBots:
    """How the demo bot region is made (defaults: 200 bots, 5 attack edges each, 10% of each
    class labelled)."""

    n_bots: int = 200
    attack_edges: int = 5
    label_fraction: float = 0.1
    seed: int = 0


def demo_bot_extension(users: "UserBatch", edges: "EdgeBatch", demo: DemoBots = DemoBots()) -> "BatchExtension":
    """The injected bots (flagged synthetic), their friendships and the demo labels for a dataset
    given as its validated batches (what :meth:`GraphStore.import_ego_facebook` passes ``extend``)."""
    from graphrec.store.importers import BatchExtension, EdgeBatch, LabelBatch, UserBatch

    n = len(users.external_ids)
    pairs = np.stack([edges.src, edges.dst], axis=1).astype(np.int64)
    # EdgeBatch codes index edges.ids; map them to the user batch's order.
    position = {u: i for i, u in enumerate(users.external_ids)}
    to_user = np.array([position[u] for u in edges.ids], dtype=np.int64)
    honest = Graph.from_edges(to_user[pairs], users.features.astype(np.float32), list(users.feature_names))
    injected = inject_bot_region(honest, n_bots=demo.n_bots, attack_edges=demo.attack_edges, seed=demo.seed)
    numeric = [int(u) for u in users.external_ids if u.lstrip("-").isdigit()]
    first = max(FIRST_BOT_ID, max(numeric, default=-1) + 1)
    bot_ids = [str(first + i) for i in range(demo.n_bots)]
    all_ids = list(users.external_ids) + bot_ids

    new_edges = injected.graph.edge_array()
    new_edges = new_edges[new_edges.max(axis=1) >= n]
    bots = UserBatch(
        source=f"{users.source} + demo bots",
        external_ids=bot_ids,
        feature_names=list(users.feature_names),
        features=injected.graph.features[n:],
        attributes=[{"demo": "injected bot"} for _ in bot_ids],
        attribute_names=["demo"],
        is_synthetic=np.ones(demo.n_bots, dtype=bool),
    )
    bot_edges = EdgeBatch(bots.source, all_ids, new_edges[:, 0].copy(), new_edges[:, 1].copy(), int(new_edges.shape[0]))
    labelled = sample_labels(injected.is_bot, demo.label_fraction, demo.seed).tolist()
    labels = LabelBatch(bots.source, [all_ids[i] for i in labelled],
                        ["bot" if injected.is_bot[i] else "human" for i in labelled], [DEMO_LABEL_SOURCE] * len(labelled))
    return BatchExtension(bots, bot_edges, labels)


def import_ego_facebook_with_demo_bots(store: "GraphStore", path: str | Path | None = None, *, demo: DemoBots = DemoBots(),
                                       allow_new_columns: bool = False) -> "ImportReport":
    """Import ego-Facebook (as :meth:`GraphStore.import_ego_facebook`) with a labelled demo bot
    region, all in one transaction (see the module docstring). Re-running it changes nothing."""
    return store.import_ego_facebook(path, allow_new_columns=allow_new_columns,
                                     extend=lambda users, edges: demo_bot_extension(users, edges, demo))
