"""One error body on the wire: ``{"error": {"code": ..., "message": ...}}``, never a stack trace.

graphrec's errors are mapped by the same function the CLI uses
(:func:`graphrec.errors.expected_error`), so the HTTP status follows the CLI's exit code:

=========================================  ==========  ===================  =============
error                                      CLI exit    HTTP status          code
=========================================  ==========  ===================  =============
:class:`~graphrec.errors.ConflictError`    2           409 Conflict         conflict
:class:`~graphrec.errors.InputError`       2           422                  invalid_input
:class:`~graphrec.errors.NotFoundError`    3           404                  not_found
not ready (no model, store unreachable)    4           503                  not_ready
concurrent writer, job lock                75          409 (Retry-After)    concurrent_write
anything else (a bug)                      1           500                  internal
=========================================  ==========  ===================  =============

A bug's traceback goes to the server's log with the request id; the client sees only the id.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from graphrec.errors import ConflictError, InputError, NotFoundError, expected_error

log = logging.getLogger("graphrec.service")

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                 409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_input", 503: "not_ready"}


def error_response(status: int, code: str, message: str, *, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body with ``status``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def status_of(exc: BaseException) -> tuple[int, str, str] | None:
    """(HTTP status, code, message) for an expected error, None for a bug."""
    err = expected_error(exc)
    if err is None:
        return None
    message = str(err)
    if isinstance(err, ConflictError):
        return 409, "conflict", message
    if isinstance(err, NotFoundError):
        return 404, "not_found", message
    if isinstance(err, InputError):
        return 422, "invalid_input", message
    if err.exit_code == 4:
        return 503, "not_ready", message
    if err.exit_code == 75:
        return 409, "concurrent_write", message
    return 500, "internal", message


def _request_id(request: Request) -> str:
    return str(request.scope.get("graphrec.request_id", "-"))


async def on_exception(request: Request, exc: Exception) -> JSONResponse:
    """Every exception a route raises: graphrec's errors by the table above; anything else is a
    bug: logged with its traceback, answered ``500`` with the request id only."""
    mapped = status_of(exc)
    if mapped is None:
        log.error("unexpected error on %s %s (request %s)", request.method, request.url.path, _request_id(request), exc_info=exc)
        return error_response(500, "internal", f"internal error (request {_request_id(request)}); the server log has the details")
    status, code, message = mapped
    headers = {"Retry-After": "1"} if code == "concurrent_write" else None
    if status == 500:
        log.error("error on %s %s (request %s): %s", request.method, request.url.path, _request_id(request), message)
        message = f"internal error (request {_request_id(request)}); the server log has the details"
    return error_response(status, code, message, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, rest = parts[0], parts[1:]
        return f"{where} field {'.'.join(rest)!r}" if rest else f"the {where}"
    return ".".join(parts) or "the request"


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A request that does not fit the route's schema: ``422`` naming the first bad field (and
    how many problems there are in all)."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(422, "invalid_input", "invalid request")
    first = errors[0]
    if first.get("type") == "json_invalid":
        message = f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'decode error')})"
    else:
        message = f"{_field(first.get('loc', ()))}: {first.get('msg', 'invalid')}"
    if len(errors) > 1:
        message += f" ({len(errors)} problems in all)"
    return error_response(422, "invalid_input", message)


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (no such route, wrong method, ...) in the same body shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (bytes that are not UTF-8 JSON): bad input, as everywhere
        return error_response(422, "invalid_input", "the body could not be parsed: send UTF-8 JSON")
    code = _STATUS_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    if exc.status_code == 405:
        detail = f"method {request.method} not allowed on {request.url.path}"
    return error_response(exc.status_code, code, detail, headers=getattr(exc, "headers", None))


class RejectEncodedSlash:
    """ASGI middleware: ``422`` for a path with an encoded ``/`` (``%2F``). The server decodes it
    before routing, so ``/v1/users/a%2Ffriends`` would answer for user ``a``: a user id that
    contains ``/`` cannot be addressed in a URL path, and is refused rather than misrouted."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and b"%2f" in scope.get("raw_path", b"").lower():
            response = error_response(422, "invalid_input", "the path contains an encoded slash (%2F): "
                                                            "user ids that contain / cannot be addressed in a URL path")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
