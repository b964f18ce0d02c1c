"""Reading an upload without trusting it: a streaming multipart/form-data reader with limits,
and format sniffing by magic bytes.

The body is parsed as it arrives (python-multipart's streaming ``MultipartParser``): the file
part goes straight to a temporary file in the service's folder, text fields stay in memory
(a few bytes each). Limits, each answered before the body is read to its end:

- ``Content-Length`` over the limit: 413 before a byte of the body is read;
- the file part passing ``max_file_bytes`` (or the body passing that plus
  :data:`FORM_OVERHEAD`): 413 at the chunk that crosses it, the rest is never read;
- the file's first bytes not a format we take (PNG/JPEG for images): 415 as soon as they
  arrive (the extension and the part's Content-Type are ignored);
- the whole body not in within ``timeout`` seconds: 408.

Nothing here parses the file beyond its first bytes: its header and pixels are read in a decoder
process (:mod:`serving.decoder`) that ``--timeout`` can end, because a header alone can keep
Pillow busy for seconds (10 MB of empty PNG chunks: 5 s), which in the event loop would stall
every request.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from starlette.requests import ClientDisconnect, Request

from serving.errors import ApiError
from serving.pool import ClientGone

# Room for the multipart envelope and the text fields on top of the file's own limit.
FORM_OVERHEAD = 64 * 1024
MAX_FIELD_BYTES = 1024
SNIFF_BYTES = 16

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
# ISO base media file format (MP4, MOV, M4V, 3GP): a box type at bytes 4-8.
_BMFF_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def sniff_image(head: bytes) -> str | None:
    """"png", "jpeg" or None, from the first bytes of a file."""
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def sniff_video(head: bytes) -> str | None:
    """"mp4" (MP4/MOV family), "matroska" (MKV/WebM), "avi" or None, from the first bytes."""
    if len(head) >= 8 and head[4:8] in _BMFF_BOXES:
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


@dataclass
class Upload:
    """A parsed form: text ``fields``, and the file part (``path`` in the service's folder,
    its ``size`` in bytes, the ``format`` sniffed from its first bytes, the client's
    ``filename``). Call :meth:`remove` when done (the caller owns the file)."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    size: int = 0
    format: str | None = None
    filename: str | None = None
    body_bytes: int = 0

    def remove(self) -> None:
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None


def _options(value: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    from python_multipart.multipart import parse_options_header

    return parse_options_header(value)


async def read_form(request: Request, *, file_field: str, text_fields: tuple[str, ...],
                    max_file_bytes: int, tmp_dir: Path, timeout: float,
                    sniff: Callable[[bytes], str | None], accepted: str,
                    limit_option: str = "--max-bytes") -> Upload:
    """Parse ``request``'s multipart body into an :class:`Upload` (see the module notes).

    ``file_field``: the one file part's name; ``text_fields``: the other names allowed;
    ``sniff(first bytes)`` names the file's format or returns None (415, ``accepted`` names what
    is taken). Raises ApiError (400 bad_request, 408, 413 too_large, 415, 422) or ClientGone;
    on any error no file is left behind.
    """
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser

    ctype, params = _options(request.headers.get("content-type", "").encode("latin-1"))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError("unsupported_media_type",
                       f"expected a multipart/form-data body with a '{file_field}' file field, "
                       f"got Content-Type {request.headers.get('content-type') or '(none)'}")
    max_body = max_file_bytes + FORM_OVERHEAD
    length = request.headers.get("content-length")
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise ApiError("bad_request", f"Content-Length {length!r} is not a number") from None
        if n > max_body:
            raise ApiError("too_large", f"request body is {_mb(n)}, over the {_mb(max_file_bytes)} "
                                        f"limit ({limit_option})")

    up = Upload()
    state: dict = {"name": None, "filename": None, "headers": [], "field": None, "value": b"",
                   "file": None, "head": b"", "ended": False, "seen_file": False}
    allowed = (file_field, *text_fields)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["hname"] = state.get("hname", b"") + data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["hvalue"] = state.get("hvalue", b"") + data[start:end]

    def on_header_end() -> None:
        state["headers"].append((state.pop("hname", b"").lower(), state.pop("hvalue", b"")))

    def on_part_begin() -> None:
        state.update(headers=[], name=None, filename=None, value=b"")

    def on_headers_finished() -> None:
        disp = dict(state["headers"]).get(b"content-disposition", b"")
        kind, opts = _options(disp)
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        if kind != b"form-data" or not name:
            raise ApiError("bad_request", "a multipart part has no form-data name")
        if name not in allowed:
            raise ApiError("invalid_field", f"unexpected field {name!r} (fields: {', '.join(allowed)})")
        state["name"] = name
        if name == file_field:
            if state["seen_file"]:
                raise ApiError("invalid_field", f"more than one '{file_field}' file")
            state["seen_file"] = True
            fn = opts.get(b"filename")
            up.filename = fn.decode("utf-8", "replace") if fn is not None else None
            fd, name_ = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
            up.path = Path(name_)
            state["file"] = os.fdopen(fd, "wb")
        elif name in up.fields:
            raise ApiError("invalid_field", f"field {name!r} given twice")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if state["file"] is None:
            state["value"] += chunk
            if len(state["value"]) > MAX_FIELD_BYTES:
                raise ApiError("invalid_field", f"field {state['name']!r} is over {MAX_FIELD_BYTES} bytes")
            return
        up.size += len(chunk)
        if up.size > max_file_bytes:
            raise ApiError("too_large", f"the {file_field} file is over the {_mb(max_file_bytes)} limit "
                                        f"({limit_option})")
        if len(state["head"]) < SNIFF_BYTES:
            state["head"] += chunk[:SNIFF_BYTES]
            if len(state["head"]) >= SNIFF_BYTES:
                _sniff(state["head"])
        state["file"].write(chunk)

    def _sniff(head: bytes) -> None:
        up.format = sniff(head)
        if up.format is None:
            raise ApiError("unsupported_format", f"the {file_field} file is not {accepted} (judged by its "
                                                 "content, not its name)")

    def on_part_end() -> None:
        if state["file"] is not None:
            state["file"].close()
            state["file"] = None
            if up.size and up.format is None:
                _sniff(state["head"])
        else:
            try:
                up.fields[state["name"]] = state["value"].decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError("invalid_field", f"field {state['name']!r} is not UTF-8 text") from None

    def on_end() -> None:
        state["ended"] = True

    callbacks = {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_end": on_end}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stream = request.stream().__aiter__()
    try:
        parser = MultipartParser(params[b"boundary"], callbacks=callbacks)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError()
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), remaining)
            except StopAsyncIteration:
                break
            up.body_bytes += len(chunk)
            if up.body_bytes > max_body:
                raise ApiError("too_large", f"request body is over the {_mb(max_file_bytes)} "
                                            f"limit ({limit_option})")
            if chunk:
                parser.write(chunk)
        if not state["ended"]:
            raise ApiError("bad_request", "incomplete multipart body (it ends before the closing "
                                          "boundary)")
    except asyncio.TimeoutError:
        up.remove()
        raise ApiError("request_timeout", f"the request body did not arrive within {timeout:g} s "
                                          "(--upload-timeout)") from None
    except ClientDisconnect:
        up.remove()
        raise ClientGone() from None
    except FormParserError as exc:
        up.remove()
        raise ApiError("bad_request", f"malformed multipart body ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    except BaseException:
        up.remove()
        raise
    finally:
        if state["file"] is not None:
            state["file"].close()
    return up
