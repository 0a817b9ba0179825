"""Every console script: ``--version``, help text and a stated default for every option, one ``--device`` rule,
one-line errors (pipelines.cli)."""
from __future__ import annotations

import argparse
import importlib
import tomllib
from pathlib import Path

import pytest

from pipelines.cli import error, make_parser, package_version
from perspnet.validate import check_device

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _module(target: str):
    module, func = target.split(":")
    assert func == "main", f"{target}: the console script's entry point is main(argv)"
    return importlib.import_module(module)


def _parsers(ap: argparse.ArgumentParser):
    """The parser and, recursively, its subcommands' parsers."""
    yield ap
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_answers_version(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        _module(SCRIPTS[name]).main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"{name} {package_version()}"


def test_version_is_the_installed_distributions():
    text = (ROOT / "pyproject.toml").read_text()
    assert package_version() == tomllib.loads(text)["project"]["version"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_option_has_help_and_a_stated_default(name):
    ap = _module(SCRIPTS[name]).build_parser()
    assert ap.prog == name
    missing_help, missing_default = [], []
    for parser in _parsers(ap):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            if not (action.help and action.help.strip()):
                missing_help.append(label)
            elif (action.option_strings and not action.required and not isinstance(action, argparse._VersionAction)
                  and "default" not in formatter._get_help_string(action)):
                missing_default.append(label)
    assert missing_help == []
    assert missing_default == []


def test_help_shows_defaults_of_flags_and_values():
    ap = make_parser("demo", "a demo")
    ap.add_argument("--size", type=int, default=7, help="a size")
    ap.add_argument("--flag", action="store_true", help="a flag")
    ap.add_argument("--where", default=None, help="a place")
    ap.add_argument("--said", default=3, help="said itself (default: three)")
    text = " ".join(ap.format_help().split())
    assert "a size (default: 7)" in text
    assert "a flag (default: off)" in text
    assert "a place (default: none)" in text
    assert "said itself (default: three)" in text and "(default: three) (default" not in text


@pytest.mark.parametrize("name", ["track-video", "batch-process", "perspnet-eval", "perspnet-train"])
def test_device_option_is_checked_alike(name, capsys):
    ap = _module(SCRIPTS[name]).build_parser()
    with pytest.raises(SystemExit) as exit_:
        ap.parse_args(["x", "--device", "gpu", "--data", "d", "--out", "o"])
    assert exit_.value.code == 2
    assert "--device: must be auto, cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        args, _ = ap.parse_known_args(["x", "--device", device, "--data", "d", "--out", "o"])
        assert args.device == device


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_check_device_accepts(value):
    assert check_device("device", value) == value


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "CPU", "", None, "cuda1"])
def test_check_device_rejects(value):
    with pytest.raises(ValueError, match=r"^device must be auto, cpu, cuda or cuda:N, got "):
        check_device("device", value)


def test_error_prints_one_line_and_returns_the_code(capsys):
    assert error("tool", ValueError("first line\nsecond line"), 1) == 1
    assert capsys.readouterr().err == "tool: error: first line\n"
    assert error("tool", "plain") == 2
    assert capsys.readouterr().err == "tool: error: plain\n"
