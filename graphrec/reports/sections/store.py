"""Report section: Store (to be written)."""

from __future__ import annotations

from typing import Any

from graphrec.reports.html import Section

TITLE = "Store"


def build(ctx: Any) -> Section:
    return Section("store", TITLE, missing="not drawn yet")
