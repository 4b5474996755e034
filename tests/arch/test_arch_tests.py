"""Arm's psa-arch-tests FF IPC suite on psaspm (contract section 11): ``arch_tests/run.py``
builds the suite, unmodified, for psaspm's host target and runs it; each build and level
gives the report block below, and exactly the failing tests listed here fail.

Every host-runnable test passes: KNOWN_FAILURES is empty, and a test psaspm starts to
fail (or one listed here that starts to pass) fails this test.  A failure added here
must say why (a psaspm bug, or evidence that the test is wrong for a host).

The builds are cached under build/arch-tests in the checkout (rebuilt when a source or a
header changes), so a second session only runs the suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "arch_tests" / "run.py"

# Tests of the suite's databases that the host target runs (i068-i087 left out).
CONNECTION_TESTS = 70
STATELESS_TESTS = 49
KNOWN_FAILURES: set[int] = set()

RESULT = re.compile(r"^Result=(\w+)", re.M)
NUMBER = re.compile(r"^Suite=IPC : Test=.* : Num=(\d+)", re.M)


def _report(output: str) -> dict[str, int]:
    block = output[output.rindex("IPC Suite Report") :]
    fields = {}
    for name in ("TESTS", "PASSED", "SIM ERROR", "FAILED", "SKIPPED"):
        found = re.search(rf"TOTAL {name}\s*: (\d+)", block)
        assert found is not None, f"no TOTAL {name} in the report block:\n{block}"
        fields[name] = int(found.group(1))
    return fields


def _failing(output: str) -> set[int]:
    """Test numbers whose last result line is not Passed (a reboot repeats the header)."""
    last: dict[int, str] = {}
    current = None
    for line in output.replace("\r", "").splitlines():
        header = NUMBER.match(line)
        if header:
            current = int(header.group(1))
            continue
        result = RESULT.match(line)
        if result and current is not None:
            last[current] = result.group(1)
    return {number for number, result in last.items() if result != "Passed"}


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("stateless", [False, True], ids=["connection-based", "stateless"])
def test_arch_suite_report(stateless: bool, level: int, arch_tests: Path) -> None:
    """Each build at each IPC level reports every host-runnable test, no sim error, and
    exactly the known failures (all others pass)."""
    argv = [sys.executable, str(RUNNER), "--isolation", str(level), "--suite", str(arch_tests)]
    if stateless:
        argv.append("--stateless")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    kind = "stateless" if stateless else "connection-based"
    assert out.startswith(f"== psa-arch-tests ff/ipc {kind} ipc L{level}\n")
    assert "tests i068-i087 are left out: they need a hardware MPU fault" in out
    total = STATELESS_TESTS if stateless else CONNECTION_TESTS
    failing = _failing(out)
    assert failing == KNOWN_FAILURES, out[-3000:]
    assert _report(out) == {
        "TESTS": total,
        "PASSED": total - len(KNOWN_FAILURES),
        "SIM ERROR": 0,
        "FAILED": len(KNOWN_FAILURES),
        "SKIPPED": 0,
    }
