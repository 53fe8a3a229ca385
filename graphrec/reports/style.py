"""One look for every plot of a report: a colour-blind-safe palette, readable axes, PNG inlined.

The palette is Okabe & Ito's ("Color Universal Design", 2008), the eight colours that stay
distinguishable under the common colour-vision deficiencies (protanopia, deuteranopia,
tritanopia); series beyond eight repeat with another line style (:func:`series_style`). Figures
are matplotlib ``Figure`` objects drawn on the Agg canvas (no pyplot, no GUI, no global backend
switch) and embedded in the page as ``data:image/png;base64`` URIs, so a report is one file with
no network fetches.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Okabe-Ito: black, orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple
PALETTE = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]
#: the model's colour (blue) and the baselines' colours after it, so "ours" looks the same everywhere
MODEL_COLOUR = "#0072B2"
BASELINE_COLOURS = ["#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442"]
#: the colour of thresholds and other reference lines (black, dashed), used by no series
THRESHOLD_COLOUR = "#000000"
_LINESTYLES = ["-", "--", ":", "-."]
#: the rcParams every report figure is drawn with
RC: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 100,
}


def series_style(i: int) -> dict[str, Any]:
    """Colour and line style of the ``i``-th series (0 = the model): colours from the palette,
    a new line style each time the colours run out."""
    colours = [MODEL_COLOUR, *BASELINE_COLOURS]
    return {"color": colours[i % len(colours)], "linestyle": _LINESTYLES[(i // len(colours)) % len(_LINESTYLES)]}


@contextmanager
def figure(width: float = 6.4, height: float = 4.0, ncols: int = 1, nrows: int = 1) -> Iterator[tuple["Figure", list["Axes"]]]:
    """A new report figure and its axes (a flat list), drawn with :data:`RC` and the palette."""
    import matplotlib
    from cycler import cycler
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rc = {**RC, "axes.prop_cycle": cycler(color=[MODEL_COLOUR, *BASELINE_COLOURS])}
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]  # keys are checked by matplotlib at run time
        fig = Figure(figsize=(width, height))
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
        yield fig, axes


def png_data_uri(fig: "Figure") -> str:
    """The figure as an inline ``data:image/png;base64,...`` URI (tight layout, 100 dpi)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
