from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def arch_tests(shared_dir: Path) -> Path:
    """Arm's psa-arch-tests tree (read-only: the runner copies what it changes)."""
    return shared_dir / "psa-arch-tests"
