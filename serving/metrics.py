"""Prometheus metrics (prometheus_client, one registry per app) and the request log.

:class:`RequestLog` is a pure ASGI middleware around the whole app. For every HTTP request it

- counts the body bytes received and the response bytes sent, times the request, and records
  ``toonface_http_requests_total{method, route, status}``, the latency histogram
  ``toonface_http_request_duration_seconds{route}`` and the byte counters. Every label value
  comes from a fixed set, never from the client: ``method`` is one of :data:`METHODS` or
  ``other``, ``route`` the matched route's template (e.g. ``/api/jobs/{job_id}``) or
  ``unmatched``, ``status`` one of :data:`STATUSES` or its class (``2xx`` ... ``5xx``,
  ``other``). A label set is a series kept for the life of the process, so a label the client
  could choose (an invented method) would let it grow memory and ``/metrics`` without bound;
- writes ONE log line: ``<UTC time> <method> <path> <status> in=<bytes> out=<bytes>
  style=<style or -> <ms>ms`` (+ ``client=<host:port>`` only when asked): no query string, no
  header, no image content. The fields the client chose (method, path, style) go through
  :func:`log_field`: control characters, spaces and other unprintable characters are written
  as ``\\xNN`` escapes (a backslash as ``\\\\``), so a ``%0a`` in a path cannot forge a line or a
  field; :class:`EscapeControl` does the same to every message of the service's logger;
- records a client that went away before its answer (mid-upload, or while queued) as 499:
  one log line, no traceback, not a 500;
- turns an exception that escaped a handler (a bug) into a 500 JSON error, logging the
  traceback on the server only.

Gauges read live values when scraped: the queue length, the inferences running, the loaded
styles and the video jobs by state.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable

from starlette.requests import ClientDisconnect

from serving.errors import CODES, error_body
from serving.pool import ClientGone

log = logging.getLogger("toonface.serve")

# The label values (see the module notes); anything else is "other" (methods) or its class.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
STATUSES = frozenset(CODES.values()) | {200, 202, 204, 206, 304, 416}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """The app's registry and its metrics; ``render()`` is the /metrics body and type."""

    def __init__(self, *, queue_length: Callable[[], int], running: Callable[[], int],
                 loaded_styles: Callable[[], int], jobs: Callable[[], dict[str, int]]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.core import GaugeMetricFamily

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("toonface_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("toonface_http_request_duration_seconds",
                                 "Time from the request's arrival to the end of its response",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.bytes_in = Counter("toonface_http_request_bytes", "Request body bytes received", registry=r)
        self.bytes_out = Counter("toonface_http_response_bytes", "Response body bytes sent", registry=r)
        self.inference = Histogram("toonface_inference_duration_seconds",
                                   "Decode + stylize + encode of one image in a worker",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.connections_open = Gauge("toonface_http_connections_open", "HTTP connections open",
                                      registry=r)
        self.connections_refused = Counter(
            "toonface_connections_refused", "Connections closed by the server's own limits, by "
            "reason: max_connections, header_timeout, malformed", ["reason"], registry=r)
        Gauge("toonface_queue_length", "Requests waiting for an inference worker",
              registry=r).set_function(queue_length)
        Gauge("toonface_inference_running", "Inferences running in worker threads",
              registry=r).set_function(running)
        Gauge("toonface_styles_loaded", "Generators held in memory (LRU)",
              registry=r).set_function(loaded_styles)

        class JobsCollector:
            def collect(self):
                g = GaugeMetricFamily("toonface_video_jobs", "Video jobs by state", labels=["state"])
                for state, n in jobs().items():
                    g.add_metric([state], n)
                yield g

        r.register(JobsCollector())

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _route_label(scope: dict[str, Any]) -> str:
    """The matched route's template (the app's own strings), else ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def method_label(method: Any) -> str:
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    if status in STATUSES:
        return str(status)
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def utc_stamp() -> str:
    """The request log's time: ``2026-11-29T11:11:27.399Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _escape(ch: str) -> str:
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def printable(text: str) -> str:
    """``text`` with every unprintable character (C0/C1 controls, line and paragraph
    separators, bidirectional and other format characters) as a ``\\xNN`` / ``\\uNNNN``
    escape; spaces and backslashes are kept."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def log_field(value: Any) -> str:
    """One space-free field of the request log: :func:`printable`, with spaces escaped too and
    backslashes doubled, so that a field reads back unambiguously."""
    text = str(value)
    if text.isprintable() and " " not in text and "\\" not in text:
        return text
    return "".join(_escape(c) if (c == " " or not c.isprintable()) else "\\\\" if c == "\\" else c
                   for c in text)


class EscapeControl(logging.Filter):
    """A logging filter that makes a record's message :func:`printable` (a message is one line
    whatever a client put in it); tracebacks are left as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = printable(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True


def escape_logger(logger: logging.Logger) -> None:
    """Add :class:`EscapeControl` to ``logger`` once."""
    if not any(isinstance(f, EscapeControl) for f in logger.filters):
        logger.addFilter(EscapeControl())


class RequestLog:
    """ASGI middleware: metrics, one log line per request, and the last-resort 500."""

    def __init__(self, app, metrics: Metrics, log_client: bool = False):
        self.app, self.metrics, self.log_client = app, metrics, log_client

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        scope.setdefault("state", {})
        counts = {"in": 0, "out": 0, "status": 0, "started": False}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                counts["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message):
            if message["type"] == "http.response.start":
                counts["status"] = message["status"]
                counts["started"] = True
            elif message["type"] == "http.response.body":
                counts["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        except (ClientGone, ClientDisconnect):
            pass  # nobody to answer: recorded as 499 below (or as the status already sent)
        except Exception as exc:  # noqa: BLE001 - a bug: log it, answer 500, keep serving
            log.error("internal error on %s %s", log_field(scope.get("method")),
                      log_field(scope.get("path")), exc_info=exc)
            if not counts["started"]:
                import json

                body = json.dumps(error_body("internal_error", "internal server error (the server "
                                                               "log has the details)")).encode()
                await counting_send({"type": "http.response.start", "status": 500,
                                     "headers": [(b"content-type", b"application/json"),
                                                 (b"content-length", str(len(body)).encode())]})
                await counting_send({"type": "http.response.body", "body": body})
            else:
                counts["status"] = counts["status"] or 500
        finally:
            self._record(scope, counts, time.perf_counter() - start)

    def _record(self, scope, counts, seconds: float) -> None:
        status = counts["status"] or 499  # no response started: the client went away
        route = _route_label(scope)
        m = self.metrics
        m.requests.labels(method_label(scope.get("method")), route, status_label(status)).inc()
        m.latency.labels(route).observe(seconds)
        m.bytes_in.inc(counts["in"])
        m.bytes_out.inc(counts["out"])
        style = (scope.get("state") or {}).get("style") or "-"
        stamp = utc_stamp()
        line = (f"{stamp} {log_field(scope.get('method', '?'))} {log_field(scope.get('path', '?'))} "
                f"{status} in={counts['in']} out={counts['out']} style={log_field(style)} "
                f"{seconds * 1000:.0f}ms")
        if self.log_client and scope.get("client"):
            host, port = scope["client"][:2]
            line += f" client={log_field(host)}:{port}"
        log.info("%s", line)
