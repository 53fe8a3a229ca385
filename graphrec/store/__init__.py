"""The SQL graph store: schema, migrations, importers, snapshots."""

from graphrec.store.report import ImportReport
from graphrec.store.snapshot import CircleInfo, Snapshot
from graphrec.store.store import GraphStore, StoreStats, UserRecord

__all__ = ["CircleInfo", "GraphStore", "ImportReport", "Snapshot", "StoreStats", "UserRecord"]
