"""atheris (libFuzzer) target for the mailbox frame decoder.

Run: ``python tests/remote/fuzz_decoder.py -max_total_time=60``.  The test
suite runs it for a few seconds when atheris is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

with atheris.instrument_imports():
    from psaspm.mailbox import protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from tests.remote.test_protocol import fuzz_one


def test_one_input(data: bytes) -> None:
    fuzz_one(data)
    assert protocol.PROTOCOL_VERSION == 1


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
