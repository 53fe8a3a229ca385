"""Alembic migrations of the graphrec store (installed as ``graphrec.migrations``)."""
