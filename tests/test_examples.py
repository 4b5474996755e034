"""Every example runs, under every configuration it supports, without a wrong result."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.usefixtures("demo_flash")

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
    out = capsys.readouterr().out
    assert out.strip()
    if folder.name == "demo":  # a fresh flash image: the first run and the first boot
        assert "has run 1 time(s)" in out and "boot_count=1," in out


def test_run_script_prints_stats(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/run.py FOLDER --backend B --isolation N runs the example and prints stats."""
    assert RUN.main([str(EXAMPLES / "echo"), "--backend", "ipc", "--isolation", "2"]) == 0
    out = capsys.readouterr().out
    assert "backend ipc, isolation 2" in out
    assert "stats:" in out and "svc_entries=" in out


def test_run_script_reports_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/run.py prints a ConfigError (here: partition code missing) as one line, exit 2."""
    folder = tmp_path / "nocode"
    folder.mkdir()
    (folder / "ns_app.py").write_text("def main(ns, system):\n    pass\n", encoding="utf-8")
    (folder / "sp.yaml").write_text(
        "psa_framework_version: 1.1\nname: TFM_SP_NOCODE\ntype: PSA-ROT\npriority: NORMAL\n"
        "model: SFN\nstack_size: 0x200\nservices:\n  - name: S\n    sid: 0xA00\n"
        "    connection_based: false\n",
        encoding="utf-8",
    )
    assert RUN.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("run.py: error: TFM_SP_NOCODE: no partition code:")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert RUN.main([str(tmp_path)]) == 2  # not an example folder
    assert "no ns_app.py" in capsys.readouterr().err


def test_run_script_loads_a_folders_manifest_list() -> None:
    """A folder with a manifest list (the demo) is loaded through it, so pids are the list's."""
    assert RUN.sources(EXAMPLES / "demo") == [EXAMPLES / "demo" / "demo_manifest_list.yaml"]
    assert RUN.sources(EXAMPLES / "echo") == [EXAMPLES / "echo" / "echo_service.yaml"]
