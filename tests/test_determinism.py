"""Deterministic: the same input gives the same schedule and the same trace of events."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

import psaspm
from psaspm.kernel.instruments import EventLog
from psaspm.runner import load_script

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def _demo_events(isolation: int) -> list[tuple[object, ...]]:
    log = EventLog()
    system = psaspm.load(DEMO / "demo_manifest_list.yaml", isolation=isolation, tracer=log)
    system.boot()
    with contextlib.redirect_stdout(io.StringIO()):
        load_script(DEMO / "ns_app.py")(system.ns_client(), system)
    return log.events


@pytest.mark.parametrize("isolation", [1, 2, 3])
def test_same_workload_same_event_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: int
) -> None:
    """Two runs of the demo on fresh flash images make the same API calls, switches, messages, replies and interrupts in the same order."""
    runs = []
    for run in range(2):
        monkeypatch.setenv("PSASPM_DEMO_FLASH", str(tmp_path / f"flash{run}.img"))
        runs.append(_demo_events(isolation))
    assert len(runs[0]) > 100
    assert runs[0] == runs[1]
