"""Size limits in the packages: no module of rl4rec_core, tasks or flows over 400 lines, no function over 60.

Past those sizes a module holds more than one concern and a function more than one step; the
failure names every offender, so split it by concern or extract a well-named helper.
A function's length runs from its ``def`` line to its last line (decorators excluded, docstring
included); nested functions are measured on their own as well as inside their parent.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rl4rec_core

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

CORE = Path(rl4rec_core.__file__).resolve().parent
ROOT = CORE.parent
PACKAGES = (CORE, ROOT / "tasks", ROOT / "flows")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in pkg.rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_packages_are_found():
    found = {p.relative_to(ROOT).parts[0] for p in _modules()}
    assert found == {"rl4rec_core", "tasks", "flows"} and len(_modules()) > 100, f"expected the packages under {ROOT}"


def test_no_module_over_400_lines():
    too_long = []
    for path in _modules():
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{_name(path)}: {lines} lines")
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by concern):\n" + "\n".join(too_long)


def test_no_function_over_60_lines():
    too_long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{_name(path)}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long, (
        f"functions over {MAX_FUNCTION_LINES} lines (extract helpers):\n" + "\n".join(sorted(too_long))
    )
