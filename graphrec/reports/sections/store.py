"""Report section: the store itself -- its summary figures, the real users' degree distribution
(log-log), the rows of every table, the schema revision history and the data revision each model
was trained at.

Everything here is read from the store (``stats``, ``table_sizes``, ``schema_history``,
``model_runs``) and the real users' graph, so the section draws on any initialised store; an
empty one gets the tables and a note that there is no graph to draw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphrec.reports.html import Block, Plot, Section, Table, Text

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from graphrec.reports.context import ReportContext

TITLE = "Store"


def degree_ccdf(degrees: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """The complementary cumulative distribution of the positive ``degrees``: each distinct degree
    ``d`` and the share of (non-isolated) users with degree ``>= d``. Empty arrays when no user
    has a friend. A CCDF rather than a histogram: no binning choice, and a heavy tail shows as a
    straight-ish line on log-log axes."""
    import numpy as np

    deg = np.asarray(degrees, dtype=np.int64)
    deg = deg[deg > 0]
    if deg.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    values, counts = np.unique(deg, return_counts=True)
    at_least = counts[::-1].cumsum()[::-1] / deg.size
    return values, at_least


def degree_plot(groups: list[tuple[str, "np.ndarray"]], title: str) -> str:
    """A log-log CCDF of each ``(name, degrees)`` group on one axis (series 0 first), as a data URI."""
    from graphrec.reports.style import figure, png_data_uri, series_style

    with figure() as (fig, (ax,)):
        for i, (name, deg) in enumerate(groups):
            x, y = degree_ccdf(deg)
            if x.size:
                ax.plot(x, y, marker="o", markersize=2.5, linewidth=1.2, label=f"{name} ({int((deg > 0).sum()):,} users)",
                        **series_style(i))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("degree d (friends)")
        ax.set_ylabel("share of users with degree ≥ d")
        ax.set_title(title)
        ax.legend()
        return png_data_uri(fig)


def table_sizes_plot(sizes: dict[str, int]) -> str:
    """Horizontal bars of the non-empty tables' row counts on a log axis, largest on top."""
    from graphrec.reports.style import MODEL_COLOUR, figure, png_data_uri

    items = sorted(((n, c) for n, c in sizes.items() if c > 0), key=lambda kv: kv[1])
    with figure(height=max(2.5, 0.32 * len(items) + 1.2)) as (fig, (ax,)):
        ax.barh([n for n, _ in items], [c for _, c in items], color=MODEL_COLOUR)
        ax.set_xscale("log")
        ax.set_xlabel("rows (log scale)")
        ax.set_title("Rows per table (non-empty tables)")
        ax.grid(axis="y", visible=False)
        for i, (_, c) in enumerate(items):
            ax.annotate(f"{c:,}", (c, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xlim(right=max(c for _, c in items) * 8)
        return png_data_uri(fig)


def _stats_rows(stats: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for key, value in stats.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v:,}" for k, v in value.items()) or "none"
        rows.append([key.replace("_", " "), value])
    return rows


def build(ctx: "ReportContext") -> Section:
    """The store section (see the module docs); never raises for an empty store."""
    store = ctx.store
    blocks: list[Block] = []
    missing: list[str] = []
    stats = store.stats().as_dict()
    blocks.append(Table(["figure", "value"], _stats_rows(stats), caption="Store summary (active users, synthetic ones included)", digits=4))

    graph = ctx.graph
    degrees = graph.degrees
    if graph.num_nodes and int((degrees > 0).sum()):
        isolated = int((degrees == 0).sum())
        blocks.append(Plot(
            degree_plot([("real users", degrees)], "Degree distribution of real users (CCDF)"),
            alt=f"Log-log plot of the share of real users with at least d friends against d, for {graph.num_nodes:,} real users.",
            caption=("A straight, slowly falling line means a heavy tail: a few users with very many friends. "
                     + (f"{isolated:,} isolated users are left out of the log axes." if isolated else "No user is isolated.")),
        ))
    else:
        missing.append("no real user has a friendship, so there is no degree distribution "
                       "(import a graph: `graphrec import ego-facebook` or `graphrec import friendships FILE`)")

    sizes = store.table_sizes()
    blocks.append(Table(["table", "rows"], [[n, c] for n, c in sorted(sizes.items(), key=lambda kv: -kv[1])], caption="Rows per table"))
    if any(c > 0 for c in sizes.values()):
        empty = sorted(n for n, c in sizes.items() if c == 0)
        blocks.append(Plot(
            table_sizes_plot(sizes), alt="Horizontal bar chart of the row count of each non-empty table on a logarithmic axis.",
            caption="Bars on a log axis: each step of the grid is ten times more rows. "
                    + (f"Empty tables (not drawn): {', '.join(empty)}." if empty else "No table is empty."),
        ))

    history = store.schema_history()
    blocks.append(Table(["revision", "message", "applied", "current"],
                        [[h["revision"], h["message"], "yes" if h["applied"] else "no", "◀ current" if h["current"] else ""] for h in history],
                        caption="Schema revisions (Alembic), oldest first"))

    runs = store.model_runs(limit=50)
    revision = store.revision()
    if runs:
        served = {}
        for kind in sorted({r["kind"] for r in runs}):
            m = ctx.manifest(kind)
            served[kind] = m.get("version") if m else None
        rows = [[r["kind"], r["version"], r["data_revision"], revision - int(r["data_revision"] or 0),
                 str(r["finished_at"])[:19] if r["finished_at"] else "", "yes" if served.get(r["kind"]) == r["version"] else ""]
                for r in runs]
        blocks.append(Table(["model", "version", "trained at data revision", "revisions behind", "finished", "served"], rows,
                            caption=f"Training runs (oldest first) and the data revision each saw; the store is at revision {revision:,}"))
    else:
        blocks.append(Text(f"No model has been trained on this store (data revision {revision:,}): run `graphrec train linkpred` (or bots, siamese, anomaly)."))
    return Section("store", TITLE, blocks, missing="; ".join(missing) or None)
