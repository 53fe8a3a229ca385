"""Report section: User embeddings.

* **The served Siamese model's user embeddings**, projected to 2-D with PCA (scikit-learn): every
  real user's current profile is embedded with the served encoder, read at the model's own width
  as the serving path reads it (:class:`graphrec.serving.similar.SimilarUsers`; the numpy encoder,
  no torch). Points are coloured by social circle where the store has circles (a user in several
  takes the largest of them; the :data:`LEGEND_GROUPS` largest circles get a colour and a legend
  entry, users of smaller circles and users in no circle are grey), else by label (unlabelled
  users grey). At most :data:`MAX_POINTS` points are drawn (a seeded sample); the projection is
  fitted on every user.
* **The latest ``graphrec eval siamese``**: cold-start Recall@K for every K from 1 to 100 of the
  Siamese model beside popularity and raw profile cosine, with the evaluation's date and
  parameters in the caption.

Nothing here trains a model or runs the evaluation again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphrec.reports.html import Block, Plot, Section, Table

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from graphrec.reports.context import ReportContext

TITLE = "User embeddings"
#: at most this many points in the scatter plot (a seeded sample)
MAX_POINTS = 5000
#: circles (or labels) with their own colour and legend entry
LEGEND_GROUPS = 8
#: the seed of the point sample
SAMPLE_SEED = 0
#: users in no circle (no label), and users of a circle (label) beyond the legend
NONE_GREY = "#CFCFCF"
OTHER_GREY = "#8C8C8C"

#: the cold-start methods in drawing order (the model first)
METHODS = {"siamese": "Siamese encoder", "popularity": "popularity", "profile cosine": "raw profile cosine"}

TRAIN_COMMAND = "run `graphrec train siamese`"
EVAL_COMMAND = "run `graphrec eval siamese` (add `--report DIR` to write this section on its own)"


@dataclass
class Groups:
    """The colour group of every user: ``group[i]`` in ``0..len(names)-1`` for the legend groups
    (largest first), ``-1`` for a smaller group, ``-2`` for none. ``kind`` is ``"circle"``,
    ``"label"`` or ``""`` (nothing to colour by); ``others`` counts the groups left grey."""

    kind: str
    group: "np.ndarray"
    names: list[str]
    sizes: list[int]
    others: int = 0


def circle_groups(circles: list["np.ndarray"], n: int, limit: int = LEGEND_GROUPS) -> Groups:
    """Each of ``n`` users in its largest circle (ties: the circle listed first); the ``limit``
    largest circles are the legend groups."""
    import numpy as np

    sizes = np.array([len(c) for c in circles], dtype=np.int64)
    order = np.argsort(-sizes, kind="stable")  # largest first, ties in the given order
    owner = np.full(n, -1, dtype=np.int64)  # rank (in ``order``) of the user's largest circle
    for rank, ci in enumerate(order.tolist()):
        members = np.asarray(circles[ci], dtype=np.int64)
        members = members[(members >= 0) & (members < n)]
        free = members[owner[members] < 0]
        owner[free] = rank
    group = np.where(owner < 0, -2, np.where(owner < limit, owner, -1))
    shown = min(limit, len(circles))
    names = [f"circle {r + 1} ({int(sizes[order[r]]):,} members)" for r in range(shown)]
    return Groups("circle", group, names, [int(sizes[order[r]]) for r in range(shown)], others=max(0, len(circles) - shown))


def label_groups(labels: "np.ndarray", limit: int = LEGEND_GROUPS) -> Groups:
    """Users by label, the ``limit`` most frequent labels as legend groups (ties by name)."""
    import numpy as np

    text = np.array(["" if lab is None else str(lab) for lab in labels.tolist()], dtype=object)
    values, counts = np.unique(text[text != ""], return_counts=True) if (text != "").any() else (np.array([]), np.array([]))
    ranked = sorted(zip(values.tolist(), counts.tolist()), key=lambda vc: (-vc[1], vc[0]))
    shown = ranked[:limit]
    index = {v: i for i, (v, _) in enumerate(shown)}
    group = np.array([-2 if t == "" else index.get(t, -1) for t in text.tolist()], dtype=np.int64)
    return Groups("label", group, [f"{v} ({c:,} users)" for v, c in shown], [c for _, c in shown], others=max(0, len(ranked) - len(shown)))


def user_groups(circles: list["np.ndarray"], labels: "np.ndarray | None", n: int) -> Groups:
    """Circles when there are any, else labels when any user has one, else no groups."""
    import numpy as np

    if circles:
        return circle_groups(circles, n)
    if labels is not None and any(lab is not None for lab in labels.tolist()):
        return label_groups(labels)
    return Groups("", np.full(n, -2, dtype=np.int64), [], [])


def at_width(features: "np.ndarray", width: int) -> "np.ndarray":
    """Profile rows at a model's width: the first ``width`` columns, zero-padded when the store has
    fewer (columns are only ever appended; :func:`graphrec.core.graph.profile_at_width` for many rows)."""
    import numpy as np

    out = np.zeros((features.shape[0], width), dtype=np.float32)
    m = min(width, features.shape[1])
    out[:, :m] = features[:, :m]
    return out


def project(z: "np.ndarray", seed: int = SAMPLE_SEED) -> tuple["np.ndarray", list[float]]:
    """2-D PCA of the embeddings ``z`` (fitted on all rows) and the share of variance of each axis."""
    import numpy as np
    from sklearn.decomposition import PCA

    if z.shape[0] < 2:
        return np.zeros((z.shape[0], 2)), [0.0, 0.0]
    k = min(2, z.shape[0], z.shape[1])
    pca = PCA(n_components=k, random_state=seed)
    xy = pca.fit_transform(z)
    ratio = pca.explained_variance_ratio_.tolist()
    if k < 2:
        xy = np.concatenate([xy, np.zeros((xy.shape[0], 2 - k))], axis=1)
        ratio += [0.0] * (2 - k)
    return xy, [float(r) for r in ratio]


def projection_plot(xy: "np.ndarray", groups: Groups, variance: list[float], version: str, *, max_points: int = MAX_POINTS,
                    seed: int = SAMPLE_SEED) -> Plot:
    """The scatter plot of the 2-D projection, coloured by ``groups`` (grey first, underneath)."""
    import numpy as np

    from graphrec.reports.style import figure, png_data_uri, series_style

    n = xy.shape[0]
    shown = np.arange(n) if n <= max_points else np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    g = groups.group[shown]
    with figure() as (fig, (ax,)):
        what = "circle" if groups.kind == "circle" else "label"
        nobody = {"circle": "in no circle", "label": "unlabelled"}.get(groups.kind, "users")
        for code, colour, label in ((-2, NONE_GREY, nobody),
                                    (-1, OTHER_GREY, f"{groups.others} smaller {what}s" if groups.others else f"other {what}s")):
            pts = shown[g == code]
            if pts.size:
                ax.scatter(xy[pts, 0], xy[pts, 1], s=6, c=NONE_GREY if not groups.kind else colour, alpha=0.6, linewidths=0,
                           label=f"{label} ({pts.size:,})", rasterized=True)
        for i, name in enumerate(groups.names):
            pts = shown[g == i]
            if pts.size:
                ax.scatter(xy[pts, 0], xy[pts, 1], s=9, c=series_style(i)["color"], alpha=0.85, linewidths=0, label=name, rasterized=True)
        ax.set_xlabel(f"PC 1 ({variance[0]:.1%} of the variance)")
        ax.set_ylabel(f"PC 2 ({variance[1]:.1%} of the variance)")
        by = {"circle": " by social circle", "label": " by label"}.get(groups.kind, "")
        ax.set_title(f"Siamese user embeddings, 2-D PCA, coloured{by}" if by else "Siamese user embeddings, 2-D PCA")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=1.6, frameon=False)
        uri = png_data_uri(fig)
    sample = f"all {n:,} real users" if shown.size == n else f"{shown.size:,} of {n:,} real users (seeded sample; PCA fitted on all)"
    if groups.kind == "circle":
        colours = (f"the {len(groups.names)} largest circles in colour (a user in several circles takes the largest), smaller circles "
                   "dark grey, users in no circle light grey")
        look = "Users of one circle close together mean the encoder learned from profiles who belongs with whom."
    elif groups.kind == "label":
        colours = f"the {len(groups.names)} most frequent labels in colour, other labels dark grey, unlabelled users light grey"
        look = "Labels that form their own clusters are ones the profile alone separates."
    else:
        colours = "no circles or labels to colour by"
        look = "Clusters are groups of users with similar learned profiles."
    alt = (f"Scatter plot of the served Siamese model's user embeddings projected to two principal components "
           f"({variance[0]:.1%} and {variance[1]:.1%} of the variance), {shown.size:,} points"
           + (": " + "; ".join(groups.names) if groups.names else "") + ".")
    return Plot(uri, alt, f"Served Siamese model {version}: {sample}, each profile embedded with the served encoder; {colours}. {look}")


# -- the evaluation record ----------------------------------------------------------------------

def eval_description(record: dict[str, Any]) -> str:
    """One line on which evaluation is drawn: its date, hidden and evaluated users, seed."""
    r = record.get("result") or {}
    when = str(record.get("created_at", "?")).replace("T", " ")[:16]
    parts = [f"`graphrec eval siamese` of {when} UTC"]
    if "hidden_users" in r:
        parts.append(f"{int(r['hidden_users']):,} cold-start users hidden, {int(r.get('evaluated_users', 0)):,} with friends to find")
    if "seed" in r:
        parts.append(f"seed {r['seed']}")
    return ", ".join(parts)


def recall_plot(record: dict[str, Any]) -> Plot | None:
    """Cold-start Recall@K per method against K (log axis); None without curve data."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    from graphrec.reports.style import figure, png_data_uri, series_style

    curves = record.get("curves") or {}
    k, recall = curves.get("k"), curves.get("recall")
    if not k or not recall:
        return None
    methods = [m for m in METHODS if m in recall] + [m for m in recall if m not in METHODS]
    with figure() as (fig, (ax,)):
        for i, m in enumerate(methods):
            values = [float("nan") if v is None else v for v in recall[m]]
            ax.plot(k, values, label=METHODS.get(m, m), linewidth=2.4 if i == 0 else 1.5, **series_style(i))
        ax.set_xscale("log")
        ax.set_xlim(k[0], k[-1])
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500) if t <= k[-1]]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticklabels([str(t) for t in ticks])
        ax.set_ylim(0, None)
        ax.set_xlabel("K (users suggested from the profile alone, log scale)")
        ax.set_ylabel("Recall@K (share of hidden friends found)")
        ax.set_title("Cold start: Recall@K from the profile alone")
        ax.legend(loc="upper left")
        uri = png_data_uri(fig)
    at = min(10, len(k)) - 1
    alt = f"Line chart of cold-start Recall@K for K from 1 to {k[-1]}; at K={k[at]}: " + "; ".join(
        f"{METHODS.get(m, m)} {recall[m][at]:.3f}" for m in methods) + "."
    return Plot(uri, alt, f"{eval_description(record)}. Every friendship of the hidden users was removed before training; look for the "
                          "Siamese curve above popularity and raw profile cosine; where it dips below popularity, simply suggesting "
                          "the best-connected users does as well as reading the profile.")


def figures_table(record: dict[str, Any]) -> Table | None:
    """The printed figures of the record (Recall@K, MRR per method; circle precision@10)."""
    metrics = (record.get("result") or {}).get("metrics") or {}
    methods = [m for m in metrics if m != "circles p@10"]
    if not methods:
        return None
    keys = [k for k in (metrics[methods[0]] or {}) if k.startswith("recall@")] + ["mrr"]
    rows: list[list[Any]] = [[METHODS.get(m, m)] + [(metrics[m] or {}).get(k) for k in keys] for m in methods]
    caption = f"Figures of the {eval_description(record)}"
    circles = metrics.get("circles p@10")
    if circles:
        caption += "; circle precision@10 of the hidden users: " + ", ".join(
            f"{METHODS.get(m, m)} {v:.3f}" for m, v in circles.items() if isinstance(v, (int, float)))
    return Table(["method"] + [k.replace("mrr", "MRR") for k in keys], rows, caption=caption)


def served_encoder(ctx: "ReportContext") -> tuple[Any, str | None]:
    """The served Siamese model's service (:class:`graphrec.serving.similar.SimilarUsers`) and
    None, or None and what is missing: no model served, or one that cannot be loaded (said, so
    the rest of the section is still drawn)."""
    from graphrec.artifacts import ArtifactError, latest_version
    from graphrec.serving.similar import SimilarUsers

    version = latest_version(ctx.home, "siamese")
    if version is None:
        return None, f"no Siamese profile model is served: {TRAIN_COMMAND}"
    try:
        return SimilarUsers(ctx.store), None
    except (ArtifactError, OSError, ValueError, KeyError) as exc:  # a broken artifact
        return None, f"the served Siamese model {version} cannot be loaded ({type(exc).__name__}: {exc}): {TRAIN_COMMAND}"


def build(ctx: "ReportContext") -> Section:
    """The section: the served model's projection, then the latest cold-start evaluation."""
    blocks: list[Block] = []
    missing: list[str] = []
    model, why = served_encoder(ctx)
    if why is not None:
        missing.append(why)
    elif ctx.graph.num_nodes == 0:
        missing.append("the store has no real users to embed")
    else:
        graph = ctx.graph
        z = model.encoder(at_width(graph.features, model.width))
        xy, variance = project(z)
        groups = user_groups(list(graph.circles), graph.labels, graph.num_nodes)
        blocks.append(projection_plot(xy, groups, variance, model.version))
    record = ctx.latest_eval("siamese")
    if record is None:
        missing.append(f"the cold-start evaluation was never run: {EVAL_COMMAND}")
    else:
        plot = recall_plot(record)
        if plot is None:
            missing.append(f"the latest siamese evaluation has no Recall@K curves (recorded by an older graphrec): {EVAL_COMMAND}")
        else:
            blocks.append(plot)
        table = figures_table(record)
        if table is not None:
            blocks.append(table)
    return Section("embeddings", TITLE, blocks, missing="; ".join(missing) or None)
