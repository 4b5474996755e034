"""House rules for the test suite itself."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_states_its_rule() -> None:
    """Every test_* function in a tests/ test module has a docstring stating the rule it checks."""
    missing = []
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name.startswith("test_")
                and not ast.get_docstring(node)
            ):
                missing.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: {node.name}")
    assert not missing, "test functions without a docstring:\n" + "\n".join(missing)
