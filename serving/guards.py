"""ASGI middlewares that guard every route: the Host check and the draining of refused bodies.

- :class:`HostCheck`: a request whose ``Host`` header names no allowed host is refused (400
  ``invalid_host``) before any route runs. A server on 127.0.0.1 is otherwise reachable from
  any web page the user opens: the page's own domain, re-pointed at 127.0.0.1 (DNS rebinding),
  is same-origin to the browser, which then sends ``Host: evil.example:8080``. The port is not
  part of the check; ``*`` allows every name.
- :class:`DrainBody`: a response that starts before the request body was read to its end (413
  at the first chunk over ``--max-bytes``, 415 at its magic bytes, 503 ...) first reads and
  drops the rest of the body, up to ``drain_bytes`` and within ``seconds`` of the request's
  start, so that clients that send their whole body before reading (Python's urllib,
  ``requests``, most HTTP libraries without ``Expect: 100-continue``) read the JSON error
  instead of a broken pipe or a reset. Past either bound, or where the client waits for
  ``100 Continue`` (curl: it then sends nothing) or the declared ``Content-Length`` is already
  over the bound, the answer goes out with ``Connection: close`` and the rest is never read.
  A 408 (the body is late) is not drained.
"""
from __future__ import annotations

import asyncio
import json

from serving.errors import error_body

ANY_HOST = "*"


def host_name(value: str) -> str:
    """The name part of a Host header value, lowercased: ``[::1]:8080`` -> ``::1``,
    ``Example.org.:80`` -> ``example.org``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


async def _send_error(send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class HostCheck:
    """ASGI middleware: 400 ``invalid_host`` unless the Host header names one of ``allowed``
    (None, or a ``*`` among them: any). A request without a Host header (HTTP/1.0) passes:
    browsers always send one."""

    def __init__(self, app, allowed):
        self.app = app
        names = None if allowed is None else {host_name(a) for a in allowed}
        self.allowed = None if names is None or ANY_HOST in names else frozenset(names)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.allowed is None:
            return await self.app(scope, receive, send)
        raw = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
        if raw is not None:
            shown = raw.decode("latin-1")
            if host_name(shown) not in self.allowed:
                shown = shown if len(shown) <= 80 and shown.isprintable() else repr(shown[:80])
                return await _send_error(
                    send, 400, "invalid_host",
                    f"Host {shown} is not a name this server answers to; allowed: "
                    f"{', '.join(sorted(self.allowed))} (--allowed-hosts)")
        await self.app(scope, receive, send)


class DrainBody:
    """ASGI middleware: see the module notes. ``drain_bytes``: at most this many body bytes are
    read and dropped after the app stopped reading (0: never); ``seconds``: from the request's
    start, the time the whole body had to arrive in (``--upload-timeout``)."""

    NOT_DRAINED = (408,)

    def __init__(self, app, drain_bytes: int, seconds: float):
        self.app, self.drain_bytes, self.seconds = app, drain_bytes, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        headers = dict(scope.get("headers", ()))
        has_body = b"content-length" in headers or b"transfer-encoding" in headers
        state = {"done": not has_body, "asked": False, "received": 0}

        async def tracking_receive():
            message = await receive()
            state["asked"] = True
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["done"] = not message.get("more_body", False)
            else:  # http.disconnect
                state["done"] = True
            return message

        async def draining_send(message):
            if message["type"] == "http.response.start" and not state["done"]:
                if not (message["status"] not in self.NOT_DRAINED
                        and await self._drain(headers, state, tracking_receive, deadline)):
                    message = {**message, "headers": [
                        *[(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"],
                        (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracking_receive, draining_send)

    async def _drain(self, headers, state, receive, deadline) -> bool:
        """Read and drop the rest of the body within the bounds; True when it was all read."""
        if not state["asked"] and b"100-continue" in headers.get(b"expect", b"").lower():
            return False  # the client waits for our word before it sends: it gets none
        try:
            declared = int(headers.get(b"content-length", b""))
        except ValueError:
            declared = None
        if declared is not None and declared - state["received"] > self.drain_bytes:
            return False
        start = state["received"]
        loop = asyncio.get_running_loop()
        while not state["done"]:
            remaining = deadline - loop.time()
            if remaining <= 0 or state["received"] - start > self.drain_bytes:
                return False
            try:
                await asyncio.wait_for(receive(), remaining)
            except asyncio.TimeoutError:
                return False
        return True
