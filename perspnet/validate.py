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
from typing import Any, Iterable, Mapping

__all__ = ["check_range", "check_int", "check_choice", "check_tuple", "check_device", "drop_removed", "ANY",
           "DEVICE_RULE"]

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


def check_tuple(name: str, value: Any, length: int | None = None, min_length: int = 0) -> tuple:
    """A tuple of exactly ``length`` items (or at least ``min_length``). Returns it; check the items apart."""
    rule = f"a tuple of {length} values" if length is not None else f"a tuple of at least {min_length} values"
    if not isinstance(value, tuple) or (len(value) != length if length is not None else len(value) < min_length):
        raise _fail(name, rule, value)
    return value


def check_device(name: str, value: Any) -> str:
    """A torch device name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. Whether
    CUDA is present is checked where the device is opened, not here (a config may be built on another host)."""
    if not (isinstance(value, str) and _DEVICE.fullmatch(value)):
        raise _fail(name, DEVICE_RULE, value)
    return value


ANY = object()
"""In :func:`drop_removed`: any stored value is accepted (a setting that only acted with a removed option on)."""


def drop_removed(what: str, data: Mapping[str, Any], removed: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a config stored in a checkpoint) without the keys of options this version no longer has.

    A removed key is dropped when it holds the value that the code now always uses (``removed[key]``, or
    :data:`ANY`); any other value means the checkpoint was made with the option on, and cannot be rebuilt
    here: ``ValueError`` naming the key (docs/experiments.md, "Removed options", names the last commit with it).
    """
    kept = dict(data)
    for key, always in removed.items():
        if key in kept:
            value = kept.pop(key)
            if always is not ANY and value != always:
                raise _fail(f"{what}.{key}", f"{always!r} (the option was removed; see 'Removed options' in "
                            "docs/experiments.md)", value)
    return kept
