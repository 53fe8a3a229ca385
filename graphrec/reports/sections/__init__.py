"""The sections of a report, one module each, with ``TITLE`` and ``build(ctx) -> Section``
(:class:`graphrec.reports.html.Section`; ``ctx`` a :class:`graphrec.reports.context.ReportContext`).
A section whose data is missing returns ``Section(..., missing="what is missing and the command
that makes it")`` instead of failing."""
