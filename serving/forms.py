"""The upload forms' fields and the answers' choices: form values (``strength``, ``portrait``,
``temporal``), the Accept header, and the errors of a refused upload or a decoder's refusal.
Every bad value is an :class:`serving.errors.ApiError` naming the field."""
from __future__ import annotations

import math

from serving.decoder import DecodeFailed
from serving.errors import ApiError

FORM_FIELDS = ("style", "strength", "portrait", "temporal")
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def parse_fraction(raw: str | None, what: str, default: float, *, one_included: bool = True) -> float:
    """A form field holding a finite number in [0, 1] (``one_included=False``: [0, 1)); empty
    or missing: ``default``. ApiError ``invalid_field`` naming ``what`` otherwise."""
    if raw is None or not raw.strip():
        return default
    interval = "[0, 1]" if one_included else "[0, 1)"
    try:
        value = float(raw)
    except ValueError:
        raise ApiError("invalid_field", f"{what} must be a number in {interval}, got {raw[:40]!r}") from None
    if not (math.isfinite(value) and 0.0 <= value and (value <= 1.0 if one_included else value < 1.0)):
        raise ApiError("invalid_field", f"{what} must be a number in {interval}, got {raw[:40]}")
    return value


def parse_strength(raw: str | None) -> float:
    """The blend with the photo, as ``cartoonize.py --strength``: [0, 1], default 1."""
    return parse_fraction(raw, "strength", 1.0)


def parse_temporal(raw: str | None) -> float:
    """The clip stabiliser's strength, as ``cartoonize.py --temporal``: [0, 1), default 0 (off)."""
    return parse_fraction(raw, "temporal", 0.0, one_included=False)


def parse_portrait(raw: str | None) -> bool:
    value = (raw or "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ApiError("invalid_field", f"portrait must be true or false, got {raw[:40]!r}")


def form_choices(request, upload, field: str, style_key) -> tuple[str, float, bool, float]:
    """(style key, strength, portrait, temporal) of an upload form whose file field is ``field``
    ("image" or "video"); ApiError for a missing or empty file and for bad fields.
    ``style_key``: the service's name -> registry key lookup (400 listing the names); the key
    goes into ``request.state.style`` (the request log) as soon as it is known."""
    if upload.path is None:
        raise ApiError("missing_field", f"no '{field}' file in the form (multipart field "
                                        f"'{field}')")
    if upload.size == 0:
        raise ApiError("empty_file", f"the {field} file is empty (0 bytes)")
    request.state.style = key = style_key(upload.fields.get("style"))
    return (key, parse_strength(upload.fields.get("strength")),
            parse_portrait(upload.fields.get("portrait")), parse_temporal(upload.fields.get("temporal")))


def choose_output(accept: str | None) -> str:
    """"png", "jpeg" or "json" from an Accept header (q-values honoured; PNG on ties and for
    */*, image/*). ApiError 406 when it names none of them."""
    if not accept or not accept.strip():
        return "png"
    offers = {"image/png": "png", "image/jpeg": "jpeg", "application/json": "json"}
    best, best_q = None, 0.0
    for rank, item in enumerate(accept.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media, q = parts[0].lower(), 1.0
        for p in parts[1:]:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media in ("*/*", "image/*"):
            kinds = ["png"]
        elif media in offers:
            kinds = [offers[media]]
        else:
            continue
        for k in kinds:
            # ties keep the earlier entry, except that an explicit type beats a wildcard
            if q > best_q or (q == best_q and best is not None and best[1] and "*" not in media):
                best, best_q = (k, "*" in media), q
    if best is None or best_q <= 0:
        raise ApiError("not_acceptable", "Accept must allow image/png, image/jpeg or "
                                         f"application/json, got {accept[:80]!r}")
    return best[0]


def unread_body(exc: ApiError) -> ApiError:
    """``exc`` answered with ``Connection: close``: it was raised before the body was read to its
    end, and on a kept-alive connection uvicorn would go on receiving (and dropping) the rest of
    an upload we refused; closing cuts it off."""
    return ApiError(exc.code, exc.message, headers={**exc.headers, "Connection": "close"})


# The option that sets each limit of media.decode, as the service names it.
LIMIT_OPTIONS = {"side": "--max-side", "pixels": "--max-side", "frames": "--max-video-frames",
                 "animation-pixels": "--max-animation-pixels", "bytes": "--max-bytes"}


def decode_error(exc: DecodeFailed) -> ApiError:
    """A decoder's refusal as the service's error: 413 for a limit (naming its option), 400 for
    a file that cannot be decoded."""
    if exc.kind != "too_large":
        return ApiError("unreadable_image", exc.message)
    option = LIMIT_OPTIONS.get(exc.what or "")
    message = f"{exc.message} ({option})" if option else exc.message
    return ApiError("too_large" if exc.what == "bytes" else "image_too_large", message)
