"""Scheduled batch jobs (cron / Airflow): the nightly scoring job (:mod:`graphrec.jobs.nightly`),
whose runs are written atomically to the store, and its JSON-lines log (:mod:`graphrec.jobs.log`)."""
