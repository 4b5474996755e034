"""Fixtures for the C foundation tests: a private build cache, corpus paths, a compiler."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from psaspm.cbuild import INCLUDE_DIR


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $PSASPM_CACHE for one test (never the user's ~/.cache/psaspm)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("PSASPM_CACHE", str(root))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    return root


@pytest.fixture(scope="session")
def corpus(shared_dir: Path) -> Path:
    return shared_dir / "tfm-manifests"


@pytest.fixture(scope="session")
def arch_tests(shared_dir: Path) -> Path:
    """Arm's psa-arch-tests tree (read-only: tests copy what they change)."""
    return shared_dir / "psa-arch-tests"


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
