"""A system's life: the threads of an old boot at reset, and the OS thread it runs in."""

from __future__ import annotations

import gc
import textwrap
from pathlib import Path

import pytest

import psaspm
from psaspm import Panic

from .support import Config, Spe, sfn_service

MANIFEST = """
{"psa_framework_version": 1.1, "name": "TFM_SP_CLEANUP", "type": "PSA-ROT",
 "priority": "NORMAL", "model": "IPC", "entry_point": "main", "stack_size": "0x400",
 "services": [{"name": "CLEANUP", "sid": "0x5000", "non_secure_clients": true,
               "connection_based": false, "version": 1}]}
"""

CODE = """
from psaspm.psa import PSA_BLOCK, psa_get, psa_reply, psa_wait

LOG = []

def main():
    try:
        while True:
            psa_wait(0x10, PSA_BLOCK)
            msg = psa_get(0x10)
            psa_reply(msg.handle, 0)
    finally:
        LOG.append("unwound")
        try:
            psa_wait(0x10, PSA_BLOCK)  # no system is behind the door any more
        except RuntimeError as exc:
            LOG.append(type(exc).__name__)
"""


def test_reset_ends_the_old_threads_at_once(tmp_path: Path) -> None:
    """reset() ends the old boot's threads before rebooting; their unwinding cannot reach the new boot."""
    manifest = tmp_path / "cleanup.yaml"
    manifest.write_text(MANIFEST)
    manifest.with_suffix(".py").write_text(textwrap.dedent(CODE))
    system = psaspm.load(manifest)
    system.boot()
    old = system.partition_code("TFM_SP_CLEANUP")
    assert system.ns_client().call(system.constants["CLEANUP_HANDLE"]) == 0
    system.reset()
    assert getattr(old, "LOG") == ["unwound", "RuntimeError"]  # noqa: B009
    new = system.partition_code("TFM_SP_CLEANUP")
    assert new is not old and getattr(new, "LOG") == []  # noqa: B009
    assert system.ns_client().call(system.constants["CLEANUP_HANDLE"]) == 0
    assert system.stats["messages"] == 2  # counters span the reset


def test_a_system_runs_in_the_thread_that_booted_it(tmp_path: Path) -> None:
    """Calling a system from another OS thread is a clear error and leaves it working."""
    import threading

    manifest = tmp_path / "cleanup.yaml"
    manifest.write_text(MANIFEST)
    manifest.with_suffix(".py").write_text(textwrap.dedent(CODE))
    system = psaspm.load(manifest)
    system.boot()
    handle = system.constants["CLEANUP_HANDLE"]
    errors: list[BaseException] = []

    def other() -> None:
        try:
            system.ns_client().call(handle)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "another thread" in str(errors[0])
    assert system.ns_client().call(handle) == 0


@pytest.mark.parametrize("config", [Config("sfn", 1), Config("ipc", 1)], ids=str)
def test_panic_reset_cycles_keep_memory_flat(spe: Spe, config: Config) -> None:
    """10,000 panic/reset cycles leave the number of live objects where it was: nothing a
    boot creates outlives the next reset."""
    system = spe.boot(config, sfn_service("psa_panic()"))
    ns = system.ns_client()
    handle = system.constants["SVC_HANDLE"]

    def cycles(n: int) -> None:
        for _ in range(n):
            with pytest.raises(Panic):
                ns.call(handle)
            system.reset()

    cycles(100)  # warm caches (interned names, code objects of psaspm's own lazy paths)
    gc.collect()
    before = len(gc.get_objects())
    cycles(10_000)
    gc.collect()
    after = len(gc.get_objects())
    assert after - before < 100, f"{after - before} more objects after 10,000 cycles"
