"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only reference folder (corpus of real manifests, contract, rules)."""
    path = Path(os.environ.get("PSASPM_SHARED", REPO.parent / "shared"))
    if not (path / "tfm-manifests").is_dir():
        pytest.fail(
            f"the reference folder {path} (with tfm-manifests/) is missing: "
            "clone psaspm beside shared/ or set PSASPM_SHARED"
        )
    return path
