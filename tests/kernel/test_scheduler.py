"""The IPC scheduler's ready mask is only a cache of the derived thread state."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

import psaspm
from psaspm.kernel.ipc import IpcBackend
from psaspm.kernel.runtime import blocked
from psaspm.runner import load_script

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


def _consistent(system: psaspm.System) -> None:
    backend = system.spm.backend
    assert isinstance(backend, IpcBackend)
    for thread in backend.threads:
        runnable = bool(backend.ready & thread.bit)
        assert runnable == (not blocked(thread.part)), thread.name
    ns = backend.ns.part
    assert not blocked(ns)  # the NS side runs: its call has returned


@pytest.mark.parametrize("isolation", [1, 2, 3])
def test_ready_mask_agrees_with_waiting_and_asserted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: int
) -> None:
    """Whenever the NS side runs, a partition thread is in the ready mask iff it is not blocked (waiting & ~asserted)."""
    monkeypatch.setenv("PSASPM_DEMO_FLASH", str(tmp_path / "flash.img"))
    system = psaspm.load(DEMO / "demo_manifest_list.yaml", isolation=isolation)
    system.boot()
    _consistent(system)
    calls = 0
    ns = system.ns_client()
    real_call = ns.call

    def checked_call(*args: object, **kwargs: object) -> int:
        nonlocal calls
        status = real_call(*args, **kwargs)  # type: ignore[arg-type]
        _consistent(system)
        calls += 1
        return status

    ns.call = checked_call  # type: ignore[method-assign]
    with contextlib.redirect_stdout(io.StringIO()):
        load_script(DEMO / "ns_app.py")(ns, system)
    assert calls > 10
