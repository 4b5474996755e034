"""Every example runs, under every configuration it supports, without a wrong result."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("psaspm_examples_run", EXAMPLES / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN = _runner()
FOLDERS = sorted(p.parent for p in EXAMPLES.glob("*/ns_app.py"))
CASES = [
    pytest.param(folder, backend, isolation, id=f"{folder.name}-{backend}{isolation}")
    for folder in FOLDERS
    for backend, isolation in RUN.configs(folder)
]


def test_the_three_examples_exist() -> None:
    """examples/ holds the echo, stateless and caller examples, each with a README."""
    assert {f.name for f in FOLDERS} >= {"echo", "stateless", "caller"}
    for folder in FOLDERS:
        assert (folder / "README.md").is_file()


@pytest.mark.parametrize(("folder", "backend", "isolation"), CASES)
def test_example_runs(
    folder: Path, backend: str, isolation: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """ns_app.main completes (it raises on a wrong result) and prints what it does."""
    system = RUN.run(folder, backend, isolation)
    assert system.state == "running"
    assert system.stats["messages"] > 0
    assert capsys.readouterr().out.strip()


def test_run_script_prints_stats(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/run.py FOLDER --backend B --isolation N runs the example and prints stats."""
    assert RUN.main([str(EXAMPLES / "echo"), "--backend", "ipc", "--isolation", "2"]) == 0
    out = capsys.readouterr().out
    assert "backend ipc, isolation 2" in out
    assert "stats:" in out and "svc_entries=" in out
