"""Fixtures for the C foundation tests: a private build cache, corpus paths, a compiler."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import psaspm
from psaspm.cbuild import INCLUDE_DIR
from psaspm.system import import_python_file


@pytest.fixture(scope="module", autouse=True)
def _module_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test module here builds into a private cache of its own (never the user's
    ~/.cache/psaspm), with the default compilers ($CC and $CXX unset)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PSASPM_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.delenv("CC", raising=False)
        patch.delenv("CXX", raising=False)
        yield


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $PSASPM_CACHE for one test (never the user's ~/.cache/psaspm)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("PSASPM_CACHE", str(root))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    return root


def gcc() -> str:
    found = shutil.which("gcc") or shutil.which("cc")
    assert found is not None, "these tests need a C compiler (gcc or cc) on PATH"
    return found


def compile_check(
    source: Path, include_dirs: Sequence[Path], *flags: str, cxx: bool = False
) -> subprocess.CompletedProcess[str]:
    """Compile ``source`` for syntax only against psaspm's headers and ``include_dirs``."""
    compiler = (shutil.which("g++") or "c++") if cxx else gcc()
    argv = [compiler, "-fsyntax-only", f"-I{INCLUDE_DIR}"]
    argv += [f"-I{d}" for d in include_dirs]
    argv += [*flags, str(source)]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def ns_output(
    example: str,
    manifest: Path,
    backend: str,
    isolation: int,
    capsys: pytest.CaptureFixture[str],
    c_threads: bool = False,
) -> tuple[str, dict[str, int]]:
    """What examples/<example>/ns_app.py prints against ``manifest``, and the counters."""
    app = import_python_file(EXAMPLES / example / "ns_app.py", "example", example)
    system = psaspm.load(manifest, backend=backend, isolation=isolation, c_threads=c_threads)
    system.boot()
    capsys.readouterr()
    app.main(system.ns_client(), system)
    stats = system.stats
    return capsys.readouterr().out, {
        k: stats[k] for k in ("psa_calls", "messages", "context_switches", "panics")
    }
