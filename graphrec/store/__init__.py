"""The SQL graph store: schema, migrations, importers, snapshots."""

from graphrec.store.report import ImportReport
from graphrec.store.snapshot import CircleInfo, Snapshot
from graphrec.store.store import ExportResult, GraphStore, SchemaStatus, StoreStats, UserRecord

__all__ = ["CircleInfo", "ExportResult", "GraphStore", "ImportReport", "SchemaStatus", "Snapshot", "StoreStats", "UserRecord"]
