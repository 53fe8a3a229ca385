"""The HTTP service (``graphrec serve``): FastAPI routes over the same library functions the CLI
calls (:mod:`~graphrec.service.app`), bearer-token auth with scopes (:mod:`~graphrec.service.auth`),
one JSON error shape (:mod:`~graphrec.service.errors`), Prometheus metrics and access logs
(:mod:`~graphrec.service.metrics`), request and response schemas (:mod:`~graphrec.service.schemas`)
and the uvicorn runner (:mod:`~graphrec.service.server`). Like the CLI, it parses, calls one
library function and returns its JSON: no SQL, no model logic.
"""
