"""Kernel bugs are not panics: an exception raised by SPM code itself breaks the system
loudly as an internal error, with its original traceback, in every configuration."""

from __future__ import annotations

import traceback

import pytest

from psaspm import Panic
from psaspm.errors import InternalError
from psaspm.kernel.spm import Spm
from psaspm.psa import PSA_IPC_CALL

from .support import ECHO_SID, Config, Spe, echo, sfn_service


class _SpmBug(ZeroDivisionError):
    """Stands for a bug inside the SPM (raised from an SPM method, not partition code)."""


def _broken_read(self: Spm, msg_handle: int, index: int, num_bytes: int) -> bytes:
    raise _SpmBug("a bug in partition_read")


def test_spm_exception_breaks_the_system(
    spe: Spe, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception raised inside the SPM reaches the NS caller as InternalError whose cause
    is the original exception; no panic is recorded and the state is "broken"."""
    monkeypatch.setattr(Spm, "partition_read", _broken_read)
    system = spe.boot(config, echo("IPC" if config.ipc else "SFN"))
    ns = system.ns_client()
    handle = ns.connect(ECHO_SID, 1)
    with pytest.raises(InternalError) as caught:
        ns.call(handle, PSA_IPC_CALL, [b"ping"], [bytearray(4)])
    assert isinstance(caught.value.__cause__, _SpmBug)
    frames = traceback.extract_tb(caught.value.__cause__.__traceback__)
    assert frames[-1].name == "_broken_read"  # the original traceback is kept
    assert "psa_read" in str(caught.value)
    assert system.state == "broken"
    assert system.panic is None
    assert system.stats["panics"] == 0


def test_a_broken_system_refuses_every_later_call(
    spe: Spe, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once broken, every NS call, interrupt and reset raises InternalError again."""
    monkeypatch.setattr(Spm, "partition_read", _broken_read)
    system = spe.boot(config, echo("IPC" if config.ipc else "SFN"))
    ns = system.ns_client()
    handle = ns.connect(ECHO_SID, 1)
    with pytest.raises(InternalError):
        ns.call(handle, PSA_IPC_CALL, [b"x"], [])
    for later in (
        lambda: ns.call(handle, PSA_IPC_CALL, [], []),
        lambda: ns.connect(ECHO_SID, 1),
        lambda: ns.framework_version(),
        system.reset,
        lambda: system.tick(1),
    ):
        with pytest.raises(InternalError, match="broken by an earlier internal error"):
            later()
    assert system.state == "broken"


def test_partition_exceptions_stay_panics(spe: Spe, config: Config) -> None:
    """An exception raised by partition code itself is still that partition's panic."""
    system = spe.boot(config, sfn_service("return 1 // 0"))
    with pytest.raises(Panic) as caught:
        system.ns_client().call(system.constants["SVC_HANDLE"])
    assert caught.value.record.partition == "TFM_SP_SVC"
    assert "ZeroDivisionError" in caught.value.record.reason
    assert system.state == "panicked"


def test_an_spm_bug_in_a_nested_call_is_not_the_callers_panic(
    spe: Spe, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel bug raised while partition code runs a PSA call passes through that code
    (even its ``except Exception``) and is not recorded as its panic."""
    monkeypatch.setattr(Spm, "partition_read", _broken_read)
    body = """
    try:
        psa_read(msg.handle, 0, 1)
    except Exception:
        log.append("swallowed")
    return 0
    """
    system = spe.boot(config, sfn_service(body))
    with pytest.raises(InternalError):
        system.ns_client().call(system.constants["SVC_HANDLE"], PSA_IPC_CALL, [b"a"], [])
    assert spe.log == []
    assert system.panic is None
