"""The summary every import returns (kept free of heavy imports: the serving path loads it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ImportReport:
    """What an import did. ``changed`` is False for a re-import of the same data."""

    kind: str
    source: str
    rows_read: int = 0
    users_created: int = 0
    users_updated: int = 0
    friendships_added: int = 0
    friendships_present: int = 0
    blocks_added: int = 0
    labels_written: int = 0
    circles_written: int = 0
    feature_columns_added: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    revision: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return any(
            (
                self.users_created,
                self.users_updated,
                self.friendships_added,
                self.blocks_added,
                self.labels_written,
                self.circles_written,
                self.feature_columns_added,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["changed"] = self.changed
        return out
