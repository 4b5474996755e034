"""The SFN backend: one thread of control (the NS agent's), one stack, no scheduler.

Messaging is a direct call of the service function on the caller's stack;
the SFN interface replies on the service's behalf with what it returned.
SFN-model partitions only (the system builder refuses IPC-model ones).
"""

from __future__ import annotations

from psaspm.consts import PSA_ERROR_PROGRAMMER_ERROR, PSA_SUCCESS
from psaspm.errors import ConfigError, InternalError, PanicRecord
from psaspm.kernel.contract import Preempted, SpmPort
from psaspm.kernel.runtime import Connection, PartitionRuntime, allowed_signals
from psaspm.manifest.model import Model


class SfnBackend:
    def __init__(self, port: SpmPort) -> None:
        self.port = port

    def comp_init_assuredly(self, part: PartitionRuntime) -> None:
        if part.manifest is not None and part.model is Model.IPC:
            # TF-M's Kconfig forbids the SFN backend with the mailbox NS agent.
            raise ConfigError(
                f"{part.name}: an IPC-model NS agent cannot run under the SFN backend "
                "(TF-M allows it in manifests but not in a build); disable it or use --backend ipc"
            )
        part.allowed = allowed_signals(part)
        part.current_request = None

    def system_run(self) -> None:
        port = self.port
        for part in sorted(port.partitions, key=lambda p: p.priority):
            if not part.inited and self._init(part) < 0:
                port.fault("entry_init", "entry_init returned a negative status", part)

    def _init(self, part: PartitionRuntime) -> int:
        """Run an SFN partition's ``entry_init`` as the current component."""
        port = self.port
        previous = port.current
        port.current = part
        try:
            status = PSA_SUCCESS
            if part.init is not None:
                status = port.run_partition_code(part, "entry_init", part.init)
                if status is None:
                    status = PSA_SUCCESS  # no return statement: success, as under IPC (sprt)
                elif status.__class__ is not int:
                    port.fault("entry_init", f"entry_init returned {status!r}, not a status", part)
            part.inited = True
            return int(status)
        finally:
            port.current = previous

    def messaging(self, conn: Connection) -> int:
        port = self.port
        svc = conn.service
        assert svc is not None
        target = svc.partition
        if target.current_request is not None:
            # Stricter than TF-M: manifests forbid cycles, but make re-entry loud.
            port.fault("psa_call", f"{target.name} is already serving a request (re-entrant call)")
        failed = not target.inited and self._init(target) < 0
        target.current_request = conn
        conn.received = True
        port.current = target
        if failed:
            # TF-M: a failed lazy init reads as the service replying PROGRAMMER_ERROR.
            return PSA_ERROR_PROGRAMMER_ERROR
        sfn = svc.sfn
        if sfn is None:
            raise InternalError(f"{svc.name} has no service function")
        try:
            return sfn(conn.msg())
        except Exception as exc:  # partition code raised: its panic (halts pass through)
            port.crash(target, svc.sfn_name, exc)

    def replying(self, conn: Connection, value: int) -> int:
        port = self.port
        port.current.current_request = None
        client = conn.client
        assert client is not None
        port.current = client
        return value

    def retire(self, conn: Connection) -> None:
        """The service function ran as the current component: stop serving."""
        self.port.current.current_request = None

    def wait(self, part: PartitionRuntime, mask: int) -> int:
        port = self.port
        while True:
            ready = part.asserted & mask
            if ready:
                return ready
            if not port.interrupts_pending() and not port.wfi():
                port.halt(
                    PanicRecord(
                        part.name,
                        "psa_wait",
                        f"deadlock: waiting for signals {mask:#x} under the SFN backend, "
                        "where only an interrupt can assert them, and no interrupt is pending "
                        "or can fire",
                        deadlock=True,
                    )
                )
            port.take_interrupts(Preempted.THREAD)

    def wake_up(self, part: PartitionRuntime, signal: int) -> None:
        part.asserted |= signal

    def enter_ns(self) -> None:
        """Nothing to record: the NS agent's thread is the only thread."""

    def shutdown(self) -> None:
        """Nothing to end: the SFN backend has no threads of its own."""

    def preempt(self) -> None:
        """Nothing to switch to: signals asserted by interrupts wait for psa_wait."""
