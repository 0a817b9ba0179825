"""The packages import downward only: baseio <- perspnet <- tracker <- pipelines (scripts and tests above).

Every import statement counts, including those inside functions, so a hidden upward import fails too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["baseio", "perspnet", "tracker", "pipelines"]


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every module imported anywhere in the file at ``path``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_imported_packages_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef g():\n    from pipelines.x import y\n    import tracker.online\n")
    assert imported_packages(f) == {"os", "pipelines", "tracker"}


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_layers_below(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1:])
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"no Python files under {layer}/"
    offending = {str(f.relative_to(ROOT)): sorted(imported_packages(f) & above) for f in files}
    assert {f: pkgs for f, pkgs in offending.items() if pkgs} == {}
