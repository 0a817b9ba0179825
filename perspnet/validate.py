"""Field checks for the config dataclasses: one message style, ``<name> must be <rule>, got <value>``.

Every config's ``__post_init__`` (perspnet, tracker, pipelines) validates its fields through these, so a bad
value reads the same wherever it comes from, and the command-line tools pass the message on as their one-line
error. Each check returns the value it accepted (a number as ``float``/``int``) or raises ``ValueError``.

    >>> check_range("lr", 1e-3, 0.0, None, lo_open=True)
    0.001
    >>> check_range("dropout", 1.5, 0.0, 1.0, hi_open=True)
    Traceback (most recent call last):
    ...
    ValueError: dropout must be in [0, 1), got 1.5
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any, Iterable

__all__ = ["check_range", "check_int", "check_choice", "check_device", "DEVICE_RULE"]

DEVICE_RULE = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _fail(name: str, rule: str, value: Any) -> ValueError:
    return ValueError(f"{name} must be {rule}, got {value!r}")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {_fmt(hi)}"
    return ""


def check_range(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False, allow_inf: bool = False) -> float:
    """A real number (not a bool) in the interval given by ``lo``/``hi`` (None: unbounded on that side; closed
    unless ``lo_open``/``hi_open``); finite unless ``allow_inf``. Returns it as ``float``."""
    bounded = lo is not None or hi is not None
    rule = _interval(lo, hi, lo_open, hi_open) if bounded else "a finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(name, f"a number {rule}" if bounded else rule, value)
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise _fail(name, rule, value)
    if (lo is not None and (x <= lo if lo_open else x < lo)) or (hi is not None and (x >= hi if hi_open else x > hi)):
        raise _fail(name, rule, value)
    return x


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (not a bool) in ``[lo, hi]`` (None: unbounded on that side). Returns it."""
    rule = "an integer" + (f" {_interval(lo, hi, False, False)}" if lo is not None or hi is not None else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(name, rule, value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _fail(name, rule, value)
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """One of ``choices``. Returns it."""
    choices = tuple(choices)
    if value not in choices:
        raise _fail(name, f"one of {', '.join(map(str, choices))}", value)
    return value


def check_device(name: str, value: Any) -> str:
    """A torch device name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. Whether
    CUDA is present is checked where the device is opened, not here (a config may be built on another host)."""
    if not (isinstance(value, str) and _DEVICE.fullmatch(value)):
        raise _fail(name, DEVICE_RULE, value)
    return value
