"""The apps' layers (STYLE.md, "Extension points"): what several apps share lives below them
(assetsonar/net.py, crypto, audit; the MDM command model in assets/), so nothing in assets/,
members/ or licenses/ imports from automations/. Checked on the source, every import statement
(module level or inside a function), with ast. The apps' tests are left out: they drive the
whole product, deactivation trigger and engine included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BELOW = ("assets", "members", "licenses")
ABOVE = "automations"


def imports_from(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("app", BELOW)
def test_nothing_below_imports_from_automations(app):
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / app).rglob("*.py"))
        if "tests" not in path.relative_to(ROOT).parts
        for line, module in imports_from(path)
        if module == ABOVE or module.startswith(ABOVE + ".")
    ]
    assert offending == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from automations.models import Action\nimport automations\n")

    assert sorted(imports_from(sample)) == [(2, "automations.models"), (3, "automations")]
