"""Numbers from users: finite, in range, or refused with one line.

``click.FloatRange`` lets NaN through every bound (each comparison with NaN is false) and takes
``inf`` where no upper bound is set, so ``--eps nan`` or ``--lr inf`` would be accepted and
fail much later (black pictures, a NaN ONNX graph, a diverged run). :class:`FiniteFloat` is
the range type of every float option; :func:`finite` checks a value given through Python.
"""
from __future__ import annotations

import math
from typing import Any

import click

from utils.errors import ToonFaceError


class FiniteFloat(click.FloatRange):
    """A ``click.FloatRange`` that refuses NaN and infinities (``1e309`` reads as inf)."""

    def convert(self, value: Any, param, ctx) -> float:
        if isinstance(value, bool):  # True is an int to Python, never a number to a user
            self.fail(f"{value!r} is not a number.", param, ctx)
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def finite(value: Any, what: str, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> float:
    """``value`` as a float, checked finite and within ``[low, high]`` (``low_open``: ``> low``);
    ToonFaceError (one line naming ``what``) otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ToonFaceError(f"{what} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ToonFaceError(f"{what} must be a finite number, got {value!r}")
    if low is not None and (number <= low if low_open else number < low):
        raise ToonFaceError(f"{what} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and number > high:
        raise ToonFaceError(f"{what} must be <= {high:g}, got {value!r}")
    return number
