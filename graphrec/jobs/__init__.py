"""Scheduled batch jobs (cron / Airflow): nightly scoring runs written atomically to the store."""
