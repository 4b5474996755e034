"""The C examples (examples/echo_c, examples/stateless_c) build into partition objects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from psaspm.cbuild import build_code, system_headers_dir
from psaspm.manifest import load_system_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# folder, manifest, the symbols TF-M's names give the partition code
C_EXAMPLES = [
    ("echo_c", "echo_service", {"echo_main"}),
    ("stateless_c", "checksum", {"checksum_init", "example_checksum_sfn"}),
]


def _symbols(so: Path, *options: str) -> set[str]:
    nm = shutil.which("nm")
    assert nm is not None, "this test needs nm (binutils)"
    done = subprocess.run([nm, "-D", *options, str(so)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in done.stdout.splitlines() if line.strip()}


# An IPC-model partition (echo) does not run under the SFN backend.
CASES = [
    pytest.param(folder, stem, symbols, backend, level, id=f"{folder}-{backend}{level}")
    for folder, stem, symbols in C_EXAMPLES
    for backend, level in (("ipc", 1), ("ipc", 3), ("sfn", 1))
    if not (backend == "sfn" and folder == "echo_c")
]


@pytest.mark.parametrize(("folder", "stem", "entry_symbols", "backend", "isolation"), CASES)
def test_c_example_builds_with_its_symbols(
    cache: Path, folder: str, stem: str, entry_symbols: set[str], backend: str, isolation: int
) -> None:
    """Each C example compiles warning-free in every configuration it supports, exporting
    the manifest's symbols and leaving the PSA functions for psaspm to provide."""
    manifest = EXAMPLES / folder / f"{stem}.yaml"
    system = load_system_manifest(manifest, backend=backend, isolation=isolation)
    headers = system_headers_dir(system)
    so = build_code(
        [manifest.with_suffix(".c")],
        label=system.partitions[0].name,
        include_dirs=[headers],
        cflags=["-Wall", "-Wextra", "-Werror", "-O2"],
    )
    assert entry_symbols <= _symbols(so, "--defined-only")
    undefined = _symbols(so, "--undefined-only")
    assert {"psa_read", "psa_write"} <= undefined
