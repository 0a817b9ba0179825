"""What every command-line tool shares: the parser (help text with each option's default, ``--version``), the
``--device`` and ``--quiet`` options, and the one-line error.

Each tool's module exposes ``build_parser()`` (tests read every option's help from it) and ``main(argv)``,
which returns the exit code: 0 done, 1 an output could not be written, 2 unusable input or option.
"""
from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

from baseio.threads import apply_thread_policy
from perspnet.validate import DEVICE_RULE, check_device

__all__ = ["HelpFormatter", "make_parser", "add_subparser", "add_device", "add_quiet", "show_progress", "error",
           "package_version", "DISTRIBUTION", "Interrupted", "interruptible", "interrupted"]

DISTRIBUTION = "perspnet-tracker"


def package_version() -> str:
    """The installed distribution's version (pyproject.toml), or ``unknown`` when run from an uninstalled tree."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def _default_text(default: object) -> str:
    if default is None:
        return "none"
    if isinstance(default, (list, tuple)):
        return " ".join(map(str, default)) if default else "none"
    return str(default)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: X)`` to every option's help that does not
    state its default itself; a flag reads ``(default: off)``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.required or action.default is argparse.SUPPRESS:
            return text
        if "default" in text or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            shown = "on" if action.default else "off"
        else:
            shown = _default_text(action.default).replace("%", "%%")
        return f"{text} (default: {shown})"


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with :class:`HelpFormatter` and ``--version``.

    Every command builds its parser first, once its imports (torch among them) are loaded: the thread policy
    is applied again here (:func:`baseio.threads.apply_thread_policy`) to set what can only be set on a loaded
    library (torch's inter-op threads)."""
    apply_thread_policy()
    ap = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    ap.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                    help="print the version and exit")
    return ap


def add_subparser(subparsers, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand parser with :class:`HelpFormatter`; ``text`` is its help line and its description."""
    return subparsers.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)


def _device(value: str) -> str:
    try:
        return check_device("--device", value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {DEVICE_RULE}, got {value!r}") from None


def add_device(ap: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device``: checked the same way by every tool (:func:`perspnet.validate.check_device`); whether CUDA
    is present is checked where the library opens the device."""
    ap.add_argument("--device", type=_device, default=default, metavar="DEVICE",
                    help=f"{DEVICE_RULE}; auto picks CUDA when available, else the CPU")


def add_quiet(ap: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bar (there is none anyway when stderr is not a terminal)."""
    ap.add_argument("--quiet", action="store_true", help="no progress bar")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw a progress bar: stderr is a terminal and ``--quiet`` was not given."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def error(prog: str, message: object, code: int = 2) -> int:
    """Print ``PROG: error: <first line of message>`` to stderr and return ``code`` (the exit status)."""
    lines = str(message).strip().splitlines()
    print(f"{prog}: error: {lines[0] if lines else type(message).__name__}", file=sys.stderr)
    return code


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised as a KeyboardInterrupt so that both unwind the same way (``finally`` blocks
    remove staging folders and temporary files); ``signum`` is the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (once: further ones are ignored while
    it unwinds); the previous handlers come back at the end. Main thread only."""
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def interrupted(prog: str, err: KeyboardInterrupt, what: str) -> int:
    """Print ``PROG: interrupted: <what>`` to stderr; the exit status of the signal, 128 + its number (130 for
    SIGINT, the default for a plain KeyboardInterrupt; 143 for SIGTERM)."""
    print(f"{prog}: interrupted: {what}", file=sys.stderr)
    return 128 + getattr(err, "signum", signal.SIGINT)
