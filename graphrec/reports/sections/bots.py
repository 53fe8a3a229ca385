"""Report section: Bot detection (to be written)."""

from __future__ import annotations

from typing import Any

from graphrec.reports.html import Section

TITLE = "Bot detection"


def build(ctx: Any) -> Section:
    return Section("bots", TITLE, missing="not drawn yet")
