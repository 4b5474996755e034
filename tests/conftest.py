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


@pytest.fixture
def demo_flash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's flash image (its boot and run counters) in this test's own folder, not
    the user's; modules that run the demo use it for every test (``pytestmark``)."""
    path = tmp_path / "flash" / "its.img"
    monkeypatch.setenv("PSASPM_DEMO_FLASH", str(path))
    return path


@pytest.fixture(scope="session")
def corpus(shared_dir: Path) -> Path:
    return shared_dir / "tfm-manifests"


@pytest.fixture(scope="session")
def tfm_root(corpus: Path) -> Path:
    return corpus / "trusted-firmware-m"


@pytest.fixture(scope="session")
def tfm_list(tfm_root: Path) -> Path:
    return tfm_root / "tools" / "tfm_manifest_list.yaml"


@pytest.fixture(scope="session")
def tests_list(corpus: Path) -> Path:
    return (
        corpus / "tf-m-tests" / "tests_reg" / "test" / "secure_fw" / "tfm_test_manifest_list.yaml"
    )


@pytest.fixture(scope="session")
def ff_list(corpus: Path) -> Path:
    return corpus / "tf-m-tests" / "tests_psa_arch" / "spe" / "tfm_psa_ff_test_manifest_list.yaml"


@pytest.fixture(scope="session")
def arch_tests(shared_dir: Path) -> Path:
    """Arm's psa-arch-tests tree (read-only: tests and the runner copy what they change)."""
    return shared_dir / "psa-arch-tests"
