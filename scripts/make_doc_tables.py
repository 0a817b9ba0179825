"""Regenerate the tables of docs/outputs.md (from :mod:`baseio.schema`) and README.md's option tables (from
each command's ``build_parser()``), so the docs say what the code does.

    .venv/bin/python scripts/make_doc_tables.py          # rewrite the tables in place
    .venv/bin/python scripts/make_doc_tables.py --check  # exit 1 when a table is out of date

A table sits between ``<!-- schema: ID -->`` and ``<!-- /schema -->`` (ID a key of ``baseio.schema.SCHEMAS``)
or between ``<!-- options: COMMAND [SUBCOMMAND] -->`` and ``<!-- /options -->``; the text around is kept.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baseio.schema import SCHEMAS, FileSchema  # noqa: E402

COMMON = {"quiet"}  # options every command has alike, described once in README.md's "Commands"
BLOCK = re.compile(r"(<!-- (schema|options): ([^>]+?) -->\n)(.*?)(<!-- /\2 -->)", re.S)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def schema_table(file_schema: FileSchema) -> str:
    """Markdown table of a schema: name, unit, frame, meaning, when empty."""
    head = "column" if file_schema.kind == "csv" else ("key" if file_schema.kind == "json" else "array")
    lines = [f"| {head} | unit | frame | meaning | empty when |", "|---|---|---|---|---|"]
    lines += [f"| `{f.name}` | {_cell(f.unit)} | {_cell(f.frame)} | {_cell(f.meaning)} | {_cell(f.empty)} |"
              for f in file_schema.fields]
    return "\n".join(lines) + "\n"


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """``{command: parser}`` of every console script in pyproject.toml whose module has ``build_parser()``."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    parsers = {}
    for command, target in scripts.items():
        module = importlib.import_module(target.split(":")[0])
        if hasattr(module, "build_parser"):
            parsers[command] = module.build_parser()
    return parsers


def _option_name(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`" + (" ..." if action.nargs in ("+", "*") else "")
    name = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{name}`"
    metavar = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}") if action.choices
                                 else action.dest.upper())
    return f"`{name} {metavar}`" + (" ..." if action.nargs in ("+", "*") else "")


def _default(action: argparse.Action) -> str:
    if not action.option_strings:
        return "(required)"
    if action.required:
        return "(required)"
    if action.nargs == 0:
        return "on" if action.default else "off"
    if action.default is None:
        return "none"
    if isinstance(action.default, (list, tuple)):
        return " ".join(map(str, action.default)) or "none"
    return f"`{action.default}`"


def _meaning(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    try:
        text = text % {**vars(action), "prog": prog}
    except (KeyError, TypeError, ValueError):
        pass
    return _cell(re.sub(r"\s*\(default[^)]*\)\s*$", "", text))


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                rows.append(f"| **{name}** | | {_cell(sub.description or '')} |")
                rows += _option_rows(sub)
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and action.dest not in COMMON:
            rows.append(f"| {_option_name(action)} | {_default(action)} | {_meaning(action, parser.prog)} |")
    return rows


def options_table(parser: argparse.ArgumentParser) -> str:
    """Markdown table of a parser's arguments: option, default, meaning (``--help``, ``--version`` and
    :data:`COMMON` left out); a subcommand's options follow a row with its name in bold."""
    return "\n".join(["| option | default | meaning |", "|---|---|---|", *_option_rows(parser)]) + "\n"


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    raise KeyError(f"{parser.prog} has no subcommand {name!r}")


def render(text: str, parsers: dict[str, argparse.ArgumentParser]) -> str:
    """``text`` with every marked table regenerated (a command without ``build_parser()`` keeps its table)."""
    def replace(match: re.Match) -> str:
        opening, kind, key, body, closing = match.groups()
        if kind == "schema":
            return opening + schema_table(SCHEMAS[key.strip()]) + closing
        command, *sub = key.split()
        if command not in parsers:
            return match.group(0)
        parser = parsers[command]
        for name in sub:
            parser = _subparser(parser, name)
        return opening + options_table(parser) + closing

    return BLOCK.sub(replace, text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report out-of-date tables (exit 1)")
    args = ap.parse_args()
    parsers = command_parsers()
    stale = []
    for path in (ROOT / "docs" / "outputs.md", ROOT / "README.md"):
        text = path.read_text(encoding="utf-8")
        new = render(text, parsers)
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    print(("out of date: " if args.check else "rewritten: ") + (", ".join(stale) or "none"))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
