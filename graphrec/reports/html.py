"""The report page: sections of blocks (plots, tables, text), rendered to one self-contained HTML
file (inline CSS and PNGs, no scripts, no network fetches) with an index of the sections.

A section whose data is missing is still rendered, with what is missing and the command that
makes it (:attr:`Section.missing`), so a report of a partly trained store says what it lacks
instead of failing.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from typing import Any, Union


@dataclass
class Plot:
    """An inline PNG (``data_uri`` from :func:`graphrec.reports.style.png_data_uri`) with its
    alt text and an optional caption."""

    data_uri: str
    alt: str
    caption: str = ""


@dataclass
class Table:
    """A table: ``headers`` and ``rows`` of cells (numbers are formatted with ``digits``)."""

    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""
    digits: int = 3


@dataclass
class Text:
    """A paragraph of plain text (escaped)."""

    text: str


Block = Union[Plot, Table, Text]


@dataclass
class Section:
    """One section of the page. ``id`` is its anchor; ``missing`` (when set) says what data is
    absent and how to make it, and is shown in place of (or before) the blocks."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    missing: str | None = None

    @property
    def complete(self) -> bool:
        return self.missing is None


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _block(b: Block) -> str:
    if isinstance(b, Plot):
        cap = f"<figcaption>{html.escape(b.caption)}</figcaption>" if b.caption else ""
        return f'<figure><img src="{b.data_uri}" alt="{html.escape(b.alt, quote=True)}">{cap}</figure>'
    if isinstance(b, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c, b.digits))}</td>" for c in row) + "</tr>" for row in b.rows)
        cap = f"<caption>{html.escape(b.caption)}</caption>" if b.caption else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<p>{html.escape(b.text)}</p>"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1a1a1a;background:#fff;line-height:1.45}
header{padding:1.2rem 2rem;border-bottom:1px solid #ddd;background:#f7f7f7}
header h1{margin:0 0 .3rem 0;font-size:1.5rem}
header p{margin:0;color:#555;font-size:.9rem}
nav{padding:.8rem 2rem;border-bottom:1px solid #eee}
nav ol{margin:0;padding-left:1.2rem;columns:2}
nav .missing{color:#8a5a00}
main{padding:0 2rem 2rem 2rem;max-width:1100px}
section{border-bottom:1px solid #eee;padding:1rem 0}
h2{font-size:1.25rem;margin:.6rem 0}
figure{display:inline-block;margin:.5rem 1rem .5rem 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85rem;color:#444;max-width:640px}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.2rem 0}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}
th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
.missing-note{background:#fff7e6;border-left:4px solid #E69F00;padding:.5rem .8rem}
"""


def render_page(title: str, sections: list[Section], *, meta: dict[str, Any] | None = None,
                generated_at: dt.datetime | None = None) -> str:
    """The whole page: header (title, time, ``meta``), the index, then every section."""
    when = (generated_at or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    info = " · ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in (meta or {}).items())
    index = "".join(
        f'<li><a href="#{s.id}">{html.escape(s.title)}</a>' + (' <span class="missing">(incomplete)</span>' if s.missing else "") + "</li>"
        for s in sections
    )
    parts = []
    for s in sections:
        note = f'<p class="missing-note">{html.escape(s.missing)}</p>' if s.missing else ""
        parts.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{note}' + "".join(_block(b) for b in s.blocks) + "</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>generated {when}{' · ' + info if info else ''}</p></header>"
        f'<nav aria-label="sections"><ol>{index}</ol></nav><main>{"".join(parts)}</main></body></html>\n'
    )
