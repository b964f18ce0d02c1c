"""The HTTP server under the app: uvicorn with an h11 protocol that bounds connections.

uvicorn (0.54) bounds a request once the app has it, not before: a connection that never
finishes its headers is held open for ever (h11 has no clock; uvicorn's keep-alive timer stops
at the first byte), ``--limit-concurrency`` answers requests with 503 but still accepts and holds
every connection, and a request h11 cannot parse (``Content-Length: abc``) is answered with a
``text/plain`` 400. :class:`GuardedH11Protocol` (made by :func:`guarded_protocol`) adds:

- a header timeout: from the moment a connection waits for a request (opened, or its previous
  answer sent) its headers must be complete within ``header_timeout`` seconds; then it gets a
  408 JSON error and is closed. The same clock runs while a client goes on sending a body the
  app already answered without reading;
- a connection limit: past ``max_connections`` open connections a new one gets a 503 JSON error
  (``Retry-After: 1``) at once and is closed, so descriptors and memory stay bounded whatever the
  clients do (the listen backlog holds the ones not yet accepted);
- the service's JSON errors for requests h11 refuses (400 ``bad_request``, 431
  ``headers_too_large``), with h11's reason.

Each refusal is counted (``toonface_connections_refused_total{reason}``) and logged, at most
one line per reason per second (a flood of them would otherwise flood the log). Past the
header timeout, bodies are the app's (``--upload-timeout``); per-client limits, TLS and rate
limits belong to a reverse proxy (docs/service-limits.md).

:func:`uvicorn_config` is the one place the server is configured (``serve.py`` and the tests).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import resource
import time
from http import HTTPStatus
from typing import Any

from serving.errors import error_body
from serving.metrics import utc_stamp
from utils.errors import ToonFaceError

log = logging.getLogger("toonface.serve")

REFUSAL_REASONS = ("max_connections", "header_timeout", "malformed")
# A refused connection reads (and drops) what the client still sends for this long, so that the
# client reads the answer rather than a reset; under a flood (twice the limit) it closes at once.
LINGER_SECONDS = 1.0
# Descriptors the process needs besides its connections (styles, uploads, logs, libraries).
RESERVED_FDS = 64
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def raw_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 error response with the service's JSON body and ``Connection: close``,
    for where no request was parsed (h11 cannot send a response then)."""
    body = json.dumps(error_body(code, message)).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "content-type: application/json",
             f"content-length: {len(body)}", "connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ConnectionGuard:
    """The limits of :func:`guarded_protocol`, the open-connection count, and the refusals'
    metrics and (throttled) log lines."""

    def __init__(self, header_timeout: float, max_connections: int, metrics=None):
        self.header_timeout, self.max_connections, self.metrics = header_timeout, max_connections, metrics
        self.open = 0
        self.refusals = dict.fromkeys(REFUSAL_REASONS, 0)
        self._logged: dict[str, tuple[float, int]] = {}  # reason -> (last line's time, count then)

    def opened(self) -> None:
        self.open += 1
        if self.metrics is not None:
            self.metrics.connections_open.inc()

    def closed(self) -> None:
        self.open -= 1
        if self.metrics is not None:
            self.metrics.connections_open.dec()

    def refused(self, reason: str, status: int, message: str) -> None:
        self.refusals[reason] += 1
        if self.metrics is not None:
            self.metrics.connections_refused.labels(reason).inc()
        now = time.monotonic()
        last, count = self._logged.get(reason, (float("-inf"), 0))
        if now - last >= 1.0:
            more = self.refusals[reason] - count - 1
            also = f" (+{more} more since the last line)" if more > 0 else ""
            log.info("%s connection refused: %d %s: %s%s", utc_stamp(), status, reason, message, also)
            self._logged[reason] = (now, self.refusals[reason])


def guarded_protocol(guard: ConnectionGuard):
    """uvicorn's h11 protocol class with ``guard``'s limits (see the module notes)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    waiting_states = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._header_timer = None
            self._refused = False
            self._counted = False
            self._protocol_error: Exception | None = None
            parse = self.conn.next_event

            def next_event():  # keep h11's reason for the 400 (uvicorn drops it)
                try:
                    return parse()
                except h11.RemoteProtocolError as exc:
                    self._protocol_error = exc
                    raise

            self.conn.next_event = next_event

        # ------------------------------------------------------------- connection
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            guard.opened()
            self._counted = True
            if guard.open > guard.max_connections:
                message = (f"the server has {guard.max_connections} connections open "
                           "(--max-connections); try again later")
                self._refused = True
                guard.refused("max_connections", 503, message)
                transport.write(raw_error(503, "busy", message, {"Retry-After": "1"}))
                if guard.open > 2 * guard.max_connections or not transport.can_write_eof():
                    transport.close()
                else:  # let the client read it: half-close, drop what it sends, close soon
                    transport.write_eof()
                    self.loop.call_later(LINGER_SECONDS, transport.close)
                return
            self._watch_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            if self._counted:
                self._counted = False
                guard.closed()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # answered already; what the client still sends is dropped
            super().data_received(data)
            self._watch_headers()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch_headers()

        # ----------------------------------------------------------- header clock
        def _watch_headers(self) -> None:
            """Run the clock while the connection waits for a request's headers (or for a
            client to stop sending a body after its answer), stop it otherwise."""
            c = self.conn
            waiting = c.their_state is h11.IDLE or (c.their_state is h11.SEND_BODY
                                                     and c.our_state in waiting_states)
            if self.transport is None or self.transport.is_closing():
                waiting = False
            if waiting and self._header_timer is None:
                self._header_timer = self.loop.call_later(guard.header_timeout, self._headers_late)
            elif not waiting:
                self._stop_header_timer()

        def _stop_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            message = (f"the request headers did not arrive within {guard.header_timeout:g} s "
                       "(--header-timeout)")
            guard.refused("header_timeout", 408, message)
            if self.conn.our_state is h11.IDLE:  # no answer begun on this connection's cycle
                self.transport.write(raw_error(408, "request_timeout", message))
            self._refused = True
            self.transport.close()

        # ------------------------------------------------------------ bad requests
        def send_400_response(self, msg: str) -> None:
            exc, self._protocol_error = self._protocol_error, None
            hint = getattr(exc, "error_status_hint", 400)
            reason = str(exc).splitlines()[0][:200] if exc is not None and str(exc) else msg
            if hint == 431:
                status, code = 431, "headers_too_large"
                message = f"the request headers are too large ({reason})"
            else:
                status, code = 400, "bad_request"
                message = f"malformed HTTP request ({reason})"
            guard.refused("malformed", status, message)
            self._stop_header_timer()
            self._refused = True
            body = json.dumps(error_body(code, message)).encode()
            try:
                event = h11.Response(status_code=status, reason=HTTPStatus(status).phrase.encode(),
                                     headers=[(b"content-type", b"application/json"),
                                              (b"content-length", str(len(body)).encode()),
                                              (b"connection", b"close")])
                self.transport.write(self.conn.send(event))
                self.transport.write(self.conn.send(h11.Data(data=body)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:
                pass  # an answer was already under way on this connection: just close
            self.transport.close()

    return GuardedH11Protocol


def check_connection_limit(max_connections: int) -> None:
    """ToonFaceError (one line) where ``max_connections`` connections would not fit under the
    process's open-file limit (``ulimit -n``); raises the soft limit first where the hard one
    allows."""
    need = max_connections + RESERVED_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard == resource.RLIM_INFINITY or hard >= need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        return
    raise ToonFaceError(f"--max-connections {max_connections}: the open-file limit is {hard} "
                        f"(ulimit -n), {RESERVED_FDS} of them for the server itself; use at most "
                        f"{max(1, hard - RESERVED_FDS)} or raise the limit")


def default_allowed_hosts(host: str) -> tuple[str, ...] | None:
    """The Host names a server bound to ``host`` answers by default: for a loopback address, the
    loopback names (and ``host`` itself), so that a web page whose domain an attacker points at
    127.0.0.1 (DNS rebinding) is refused; for any other address, None (every name: the machine's
    public names are not known here; set --allowed-hosts)."""
    name = host.strip().lower().strip("[]")
    try:
        loopback = ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = name == "localhost"
    if not loopback:
        return None
    return tuple(dict.fromkeys((*LOOPBACK_NAMES, name)))


class _DropUvicornNotice(logging.Filter):
    """uvicorn's own warning for a request h11 refused: the guarded protocol logs one line with
    h11's reason instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Invalid HTTP request received."


def uvicorn_config(app, **overrides: Any):
    """The ``uvicorn.Config`` of ``app`` (:func:`serving.app.create_app`) with the guarded
    protocol and the limits of the app's :class:`serving.config.ServeConfig`; ``overrides``
    are passed to uvicorn (e.g. ``timeout_graceful_shutdown``)."""
    import uvicorn

    svc = app.state.service
    guard = ConnectionGuard(svc.config.header_timeout, svc.config.max_connections, svc.metrics)
    app.state.connection_guard = guard
    settings = dict(http=guarded_protocol(guard), ws="none", access_log=False, log_level="warning",
                    lifespan="on", timeout_graceful_shutdown=10)
    settings.update(overrides)
    config = uvicorn.Config(app, **settings)  # (configures uvicorn's loggers)
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropUvicornNotice) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_DropUvicornNotice())
    return config
