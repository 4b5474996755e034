"""Interrupts: lines, pending sources, taking them (FLIH and SLIH), and their PSA APIs.

TF-M's ``spm_handle_interrupt`` and the ``psa_irq_*``, ``psa_eoi`` and
``psa_reset_signal`` APIs.  A source is *pending* when it is enabled and its
level-triggered line is high; pending sources are taken oldest first at the
next point where the running context may be preempted:

- outside the SPM, at once;
- inside the SPM under a cross call (level 1), at once: SPM code is preemptable;
- inside an SVC (levels 2, 3) or while a FLIH runs, when the SVC or FLIH ends.

Invariant: ``pending`` holds exactly the sources that are enabled, have a high
line and have not been taken since they last became so.  The list object is
never replaced (the IPC entries hold it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from psaspm.consts import PSA_FLIH_NO_SIGNAL, PSA_FLIH_SIGNAL
from psaspm.kernel.contract import Inside, Preempted, SpmPort
from psaspm.kernel.memory import boundary_need_switch
from psaspm.kernel.runtime import IrqRuntime, PartitionRuntime

_STORM = 100_000  # interrupts taken in one go before a level that never drops is a fault


def _one_bit(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


class Interrupts:
    """The interrupt sources of one boot, and their handling."""

    def __init__(self, port: SpmPort, partitions: Sequence[PartitionRuntime]) -> None:
        self.port = port
        self.by_source: dict[str | int, list[IrqRuntime]] = {}
        for part in partitions:
            for irq in part.irqs:
                self.by_source.setdefault(irq.source, []).append(irq)
        self.pending: list[IrqRuntime] = []
        self.taking = False  # interrupts are being taken now

    # ------------------------------------------------------------ the APIs
    def _own(self, api: str, signal: int) -> IrqRuntime:
        part = self.port.current
        irq = part.irqs_by_signal.get(signal) if signal.__class__ is int else None
        if irq is None or not _one_bit(signal):
            self._fault(api, f"{signal!r} is not one of this partition's interrupt signals")
        return irq

    def _fault(self, api: str, reason: str) -> NoReturn:
        self.port.fault(api, reason)

    def partition_irq_enable(self, irq_signal: int) -> None:
        irq = self._own("psa_irq_enable", irq_signal)
        irq.enabled = True
        self.update(irq)

    def partition_irq_disable(self, irq_signal: int) -> int:
        irq = self._own("psa_irq_disable", irq_signal)
        irq.enabled = False
        return 1  # TF-M does not track the previous state

    def partition_eoi(self, irq_signal: int) -> None:
        irq = self._own("psa_eoi", irq_signal)
        if irq.is_flih:
            self._fault("psa_eoi", f"{irq.manifest.name} is a FLIH interrupt: use psa_reset_signal")
        part = self.port.current
        if not part.asserted & irq_signal:
            self._fault("psa_eoi", f"interrupt signal {irq_signal:#x} is not asserted")
        part.asserted &= ~irq_signal
        irq.enabled = True
        self.update(irq)

    def partition_reset_signal(self, irq_signal: int) -> None:
        irq = self._own("psa_reset_signal", irq_signal)
        if not irq.is_flih:
            self._fault("psa_reset_signal", f"{irq.manifest.name} is a SLIH interrupt: use psa_eoi")
        part = self.port.current
        if not part.asserted & irq_signal:
            self._fault("psa_reset_signal", f"interrupt signal {irq_signal:#x} is not asserted")
        part.asserted &= ~irq_signal

    # ------------------------------------------------------------ lines
    def set_line(self, source: str | int, level: bool) -> None:
        """Drive an interrupt line (``KeyError`` for a source no partition binds)."""
        for irq in self.by_source[source]:
            irq.line = level
            self.update(irq)

    def update(self, irq: IrqRuntime) -> None:
        """A source's line or enable bit changed: make it pending if it should fire."""
        pending = self.pending
        if irq.enabled and irq.line:
            if irq not in pending:
                pending.append(irq)
            port = self.port
            inside = port.inside
            if not (inside is Inside.SVC or port.handler_mode or self.taking):
                # Preemptable here: taken at once, inside the SPM if a cross call runs it.
                self.take(Preempted.SPM if inside else Preempted.THREAD)
        elif irq in pending:
            pending.remove(irq)

    # ------------------------------------------------------------ taking
    def take(self, where: Preempted = Preempted.THREAD) -> None:
        """Take every pending interrupt, oldest first (``where``: what it preempted)."""
        self.taking = True
        try:
            self._take_pending(where)
        finally:
            self.taking = False

    def _take_pending(self, where: Preempted) -> None:
        port = self.port
        pending = self.pending
        storm = 0
        while pending:
            storm += 1
            if storm > _STORM:
                port.fault("interrupt", "interrupt storm: a level-triggered line never drops")
            irq = pending.pop(0)
            owner = irq.partition
            counters = port.counters
            if counters is not None:
                counters.interrupts += 1
            if port.tracer is not None:
                port.tracer.interrupt(str(irq.source), owner.name, irq.handling.value, where)
            flih = irq.flih
            if flih is None:
                irq.enabled = False  # SLIH: masked until psa_eoi
                port.backend.wake_up(owner, irq.signal)
                continue
            self._run_flih(irq, owner)
            if irq.enabled and irq.line and irq not in pending:
                pending.append(irq)  # level-triggered: a line still high fires again

    def _run_flih(self, irq: IrqRuntime, owner: PartitionRuntime) -> None:
        port = self.port
        interrupted = port.current
        was_handler = port.handler_mode
        counters = port.counters
        tracer = port.tracer
        # The FLIH runs in its owner's boundary (de-privileged at levels 2 and 3).
        crossing = (counters is not None or tracer is not None) and boundary_need_switch(
            interrupted.boundary, owner.boundary
        )
        if crossing and counters is not None:
            counters.boundary_switches += 2  # into the owner's boundary and back
        if crossing and tracer is not None:
            tracer.boundary(interrupted.name, owner.name)
        api = irq.flih_name
        flih = irq.flih
        assert flih is not None
        port.current = owner
        port.handler_mode = True
        try:
            result = port.run_partition_code(owner, api, flih)
        finally:
            port.current = interrupted
            port.handler_mode = was_handler
        if crossing and tracer is not None:
            tracer.boundary(owner.name, interrupted.name)
        if result == PSA_FLIH_SIGNAL:
            port.backend.wake_up(owner, irq.signal)
        elif result != PSA_FLIH_NO_SIGNAL:
            port.fault(
                api,
                f"the FLIH returned {result!r}, not PSA_FLIH_SIGNAL or PSA_FLIH_NO_SIGNAL",
                owner,
            )
