"""The service's errors: every failure reaches the client as

    {"error": {"code": "<machine-readable>", "message": "<one line for a person>"}}

with its HTTP status. Handlers raise :class:`ApiError`; anything else that escapes a handler is
a bug: :class:`serving.metrics.RequestLog` logs it with its traceback on the server and the
client gets a 500 with a fixed message (no traceback, no path, no exception text ever reaches a
client).
"""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

# HTTP status of each error code (the README's table is built from the same list).
CODES: dict[str, int] = {
    "bad_request": 400,            # a malformed request body (multipart) or form field
    "empty_file": 400,             # the uploaded file has 0 bytes
    "unreadable_image": 400,       # the image's header or pixels cannot be decoded
    "unknown_style": 400,          # the message lists the available names
    "invalid_host": 400,           # the Host header names no --allowed-hosts name (DNS rebinding)
    "invalid_style": 400,          # a malformed blend, or styles that cannot be blended
    "not_found": 404,              # no such route, job or static file
    "method_not_allowed": 405,
    "not_acceptable": 406,         # Accept names no type we can answer with
    "request_timeout": 408,        # the body (--upload-timeout) or headers (--header-timeout) late
    "job_not_ready": 409,          # result asked for before the job is done
    "job_failed": 409,             # result of a failed job (the message says why)
    "too_large": 413,              # the body / file is over --max-bytes (--max-video-bytes)
    "image_too_large": 413,        # a side over --max-side, or a decompression bomb
    "unsupported_media_type": 415,  # not multipart/form-data
    "unsupported_format": 415,     # the file's magic bytes are not an accepted format
    "missing_field": 422,
    "invalid_field": 422,          # strength outside [0, 1], portrait not a boolean ...
    "headers_too_large": 431,      # request headers over h11's limit (16 KB)
    "client_closed": 499,          # the client went away (logged only; nobody reads it)
    "internal_error": 500,
    "busy": 503,                   # the queue, the job list or --max-connections is full: Retry-After
    "unavailable": 503,            # shutting down
    "timeout": 504,                # queue wait + inference took longer than --timeout
}


class ApiError(Exception):
    """An error answered as JSON with its status; ``code`` is a key of :data:`CODES`."""

    def __init__(self, code: str, message: str, *, headers: dict[str, str] | None = None):
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code, self.message = code, message
        self.status = CODES[code]
        self.headers = headers or {}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(code: str, message: str, headers: dict[str, str] | None = None,
                   status: int | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status or CODES[code],
                        headers=headers)


async def api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.code, exc.message, exc.headers)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               406: "not_acceptable", 413: "too_large", 415: "unsupported_media_type",
               422: "invalid_field", 503: "unavailable"}


async def http_error_handler(request: Request, exc: Any) -> JSONResponse:
    """Starlette's own HTTPException (unknown route, wrong method, static file not found)."""
    status = int(getattr(exc, "status_code", 500))
    code = _HTTP_CODES.get(status, "bad_request" if status < 500 else "internal_error")
    detail = getattr(exc, "detail", None)
    message = detail if isinstance(detail, str) and detail else code.replace("_", " ")
    if status == 404:
        message = f"no such resource: {request.url.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(code, message, getattr(exc, "headers", None) or None, status=status)


async def validation_error_handler(request: Request, exc: Any) -> JSONResponse:
    """FastAPI's RequestValidationError (typed path or query parameters)."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
    return error_response("invalid_field", message)
