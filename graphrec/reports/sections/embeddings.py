"""Report section: User embeddings (to be written)."""

from __future__ import annotations

from typing import Any

from graphrec.reports.html import Section

TITLE = "User embeddings"


def build(ctx: Any) -> Section:
    return Section("embeddings", TITLE, missing="not drawn yet")
