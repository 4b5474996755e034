"""C partitions are debuggable: their images stay on disk while they run, so gdb loads
their symbols and a breakpoint in a partition function stops there with file and line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ECHO_C = ROOT / "examples" / "echo_c" / "echo_service.yaml"

DRIVER = """
import sys
import psaspm
system = psaspm.load(sys.argv[1])
system.boot()
ns = system.ns_client()
handle = ns.connect(system.constants["EXAMPLE_ECHO_SID"], 1)
out = bytearray(16)
print("status", ns.call(handle, 0, [b"ping"], [out]), bytes(out))
"""


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_gdb_breaks_in_a_c_partition_function(tmp_path: Path) -> None:
    """A scripted gdb session breaks in the C echo's ``echo`` function, shows where it is
    called from, and the run goes on to its result after ``continue``."""
    driver = tmp_path / "drive.py"
    driver.write_text(DRIVER, encoding="utf-8")
    env = dict(os.environ, PSASPM_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(
        [
            "gdb",
            "-batch",
            "-nx",
            "-ex",
            "set breakpoint pending on",
            "-ex",
            "break echo",
            "-ex",
            "run",
            "-ex",
            "bt 3",
            "-ex",
            "continue",
            "--args",
            sys.executable,
            str(driver),
            str(ECHO_C),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    out = done.stdout
    assert "Breakpoint 1, echo (" in out, out[-3000:] + done.stderr[-2000:]
    assert "echo_service.c:" in out
    assert "in echo_main ()" in out  # the IPC entry point, under psaspm's trampoline
    assert "status 0 b'ping'" in out
