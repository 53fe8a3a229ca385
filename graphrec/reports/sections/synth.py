"""Report section: Synthetic users (to be written)."""

from __future__ import annotations

from typing import Any

from graphrec.reports.html import Section

TITLE = "Synthetic users"


def build(ctx: Any) -> Section:
    return Section("synth", TITLE, missing="not drawn yet")
