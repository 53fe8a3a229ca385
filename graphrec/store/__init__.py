"""The SQL graph store: schema, migrations, importers, snapshots, model and scoring runs."""

from graphrec.store.locks import JobLease
from graphrec.store.report import ImportReport
from graphrec.store.scores import NewScoringRun, RunInfo, StagedRun, TopScore, UserScore
from graphrec.store.snapshot import CircleInfo, Snapshot
from graphrec.store.store import ExportResult, GraphStore, ModelRunRecord, SchemaStatus, StoreStats, UserRecord

__all__ = ["CircleInfo", "ExportResult", "GraphStore", "ImportReport", "JobLease", "ModelRunRecord", "NewScoringRun", "RunInfo", "StagedRun",
           "SchemaStatus", "Snapshot", "StoreStats", "TopScore", "UserRecord", "UserScore"]
