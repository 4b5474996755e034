"""Booting tf-m-tests' FLIH and SLIH test partitions (manifests unmodified) with test code."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import psaspm

CONFIGS = [("sfn", 1), ("ipc", 1), ("ipc", 2), ("ipc", 3)]
IRQ_DIR = "tf-m-tests/tests_reg/test/secure_fw/suites/spm/irq/service"


def boot_irq_test(
    shared_dir: Path, kind: str, backend: str, isolation: int, code: ModuleType
) -> psaspm.System:
    """tf-m-tests' ``kind`` ("flih" or "slih") test partition, running ``code``, booted."""
    manifest = (
        shared_dir
        / "tfm-manifests"
        / IRQ_DIR
        / f"tfm_{kind}_test_service"
        / f"tfm_{kind}_test_service.yaml"
    )
    system = psaspm.load(
        manifest,
        backend=backend,
        isolation=isolation,
        code={f"TFM_SP_{kind.upper()}_TEST": code},
    )
    system.boot()
    return system
