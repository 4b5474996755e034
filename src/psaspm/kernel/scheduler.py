"""The IPC backend's scheduler: a greenlet thread per partition, fixed priorities, PendSV.

Priorities are TF-M 2.3's: the partition's ``load_order``; among equal values
the thread started first wins.  The NS agent's thread is always least urgent
but the idle thread.  The ready set is a bit mask indexed by priority rank, so
picking the next thread does not grow with the number of partitions.

Invariants:
- ``ready`` bit ``r`` is set iff the partition thread of rank ``r`` is not
  :func:`~psaspm.kernel.runtime.blocked` (the mask is a cache of that derived
  state; a test compares them).
- The NS agent has no bit: it runs when no partition thread is ready, and is
  blocked (a deadlock if nothing else can run) while it waits for a reply.
- ``current`` is the thread whose greenlet runs, and ``port.current`` its
  partition (a FLIH changes ``port.current`` only while it runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import greenlet

from psaspm.consts import (
    ASYNC_MSG_REPLY,
    PSA_IPC_CALL,
    PSA_IPC_CONNECT,
    PSA_IPC_DISCONNECT,
    PSA_SUCCESS,
)
from psaspm.errors import InternalError, PanicRecord
from psaspm.kernel.contract import NEED_SCHEDULE, Inside, KernelBug, SpeHalt, SpmPort
from psaspm.kernel.door import DOOR, NO_HAL, NO_SYSTEM
from psaspm.kernel.memory import boundary_need_switch
from psaspm.kernel.runtime import PartitionRuntime, awaiting_reply, blocked

NS_AGENT_PRIORITY = 0xFE00  # TF-M HEAD: the TrustZone agent's load_order, just above idle
# Interrupts the idle SPE may take in a row without any thread becoming runnable before
# it is reported as a deadlock (a FLIH that never signals would otherwise hang the host).
_IDLE_WAKEUPS = 1_000_000


class Thread:
    __slots__ = ("bit", "boundary", "glet", "name", "part", "rank")

    def __init__(self, part: PartitionRuntime) -> None:
        self.part = part
        self.name = part.name
        self.boundary = part.boundary  # fixed for the boot: read at every context switch
        self.rank = 0
        self.bit = 0
        self.glet: Any = None


class Scheduler:
    """Threads and PendSV; :class:`~psaspm.kernel.ipc.IpcBackend` adds the six operations."""

    def __init__(self, port: SpmPort) -> None:
        self.port = port
        self.threads: list[Thread] = []
        self.by_rank: list[Thread] = []
        self.ready = 0  # bit r set: the partition thread of rank r is runnable
        self.attempted = False  # a thread more urgent than the running one became runnable
        ns = Thread(port.ns_agent)
        port.ns_agent.thread = ns
        port.ns_agent.priority = NS_AGENT_PRIORITY
        self.ns = ns
        self.current = ns
        self.dead = False  # shut down: its threads are being ended

    def add_thread(self, part: PartitionRuntime) -> None:
        part.thread = Thread(part)
        self.threads.append(part.thread)

    def start(self) -> None:
        """Start every thread, let each park, then run them until the SPE is idle."""
        ordered = sorted(self.threads, key=lambda t: t.part.priority)  # stable: start order
        ordered.append(self.ns)
        self.by_rank = ordered
        ns_glet = greenlet.getcurrent()
        self.ns.glet = ns_glet
        for rank, thread in enumerate(ordered):
            thread.rank = rank
            # The NS agent, always least urgent, stays out of the ready mask (its readiness
            # is derived from its signals when nothing else is ready), so the mask only
            # grows as far as the least urgent runnable partition.
            thread.bit = 1 << rank if thread is not self.ns else 0
            if thread is not self.ns:
                thread.glet = greenlet.greenlet(self._thread_main(thread), parent=ns_glet)
                # Start it now, from this shallow stack, and let it park: a greenlet
                # inherits the recursion depth of whoever first switches to it, and at
                # boot each thread would otherwise first run from the previous one's
                # psa_wait, so depth would grow with the number of partitions.
                thread.glet.switch()
        self.ready = (1 << len(self.threads)) - 1
        self.current = self.ns
        self.port.current = self.ns.part
        self.schedule(PSA_SUCCESS)

    def _thread_main(self, thread: Thread) -> Callable[[], None]:
        port = self.port
        part = thread.part

        def run() -> None:
            try:
                greenlet.getcurrent().parent.switch()  # parked until first scheduled
                entry = part.entry
                assert entry is not None
                port.run_partition_code(part, part.entry_name, entry)
                port.fault(part.entry_name, "the partition's entry function returned", part)
            except (SpeHalt, KernelBug) as stop:
                # The SPE stops: unwind to the NS side, which reports it.
                if not self.dead:
                    self.ready = 0
                    self.ns.glet.throw(stop)
            except greenlet.GreenletExit:
                return

        return run

    def shutdown(self) -> None:
        """End every partition thread now (a host-side teardown, before a reset).

        Their unwinding (partition code's ``finally`` blocks) then happens here,
        deterministically and with no system behind the PSA door, instead of
        whenever the garbage collector kills the greenlets, possibly while a
        newer system runs.
        """
        self.dead = True
        me = greenlet.getcurrent()
        previous = DOOR.iface, DOOR.hal
        DOOR.iface, DOOR.hal = NO_SYSTEM, NO_HAL
        try:
            for thread in self.threads:
                glet = thread.glet
                if glet is not None and not glet.dead:
                    glet.parent = me
                    glet.throw(greenlet.GreenletExit)
                thread.glet = None
            self.ns.glet = None
        finally:
            DOOR.iface, DOOR.hal = previous

    def enter_ns(self) -> None:
        """The NS agent thread is whichever greenlet makes the non-secure call."""
        self.ns.glet = greenlet.getcurrent()

    def preempt(self) -> None:
        """A preemption point outside the SPM: run threads an interrupt made more urgent."""
        port = self.port
        if self.attempted and not (
            port.inside is not Inside.NONE or port.handler_mode or port.interrupts_taking()
        ):
            self.schedule(PSA_SUCCESS)

    # ---- PendSV
    def schedule(self, result: int) -> int:
        """Run the most urgent runnable thread; return ``result`` (or, when the
        caller blocked, the value it was woken with) once the caller runs again."""
        self.attempted = False
        ready = self.ready
        if ready:
            nxt = self.by_rank[(ready & -ready).bit_length() - 1]
        else:
            nxt = self.ns
            ns = nxt.part
            if ns.waiting and not ns.waiting & ns.asserted:
                nxt = self._idle()
        cur = self.current
        if nxt is not cur:
            # The context switch, inline (two per IPC call).
            port = self.port
            self.current = nxt
            port.current = nxt.part
            counters = port.counters
            if counters is not None:
                counters.context_switches += 1
                before = cur.boundary
                after = nxt.boundary
                # Equal boundaries never need a switch: skip the HAL call in the common case.
                if before != after and boundary_need_switch(before, after):
                    counters.boundary_switches += 1
            tracer = port.tracer
            if tracer is not None:
                tracer.switch(cur.name, nxt.name)
                before = cur.boundary
                if before != nxt.boundary and boundary_need_switch(before, nxt.boundary):
                    tracer.boundary(cur.name, nxt.name)
            nxt.glet.switch()
            # Running again: whoever switched here made this thread current.
            if self.current is not cur:
                raise InternalError(f"{cur.name} resumed while {self.current.name} is current")
        if result == NEED_SCHEDULE:
            part = cur.part
            woken = part.waiting & part.asserted
            part.waiting = 0
            if woken == ASYNC_MSG_REPLY and not part.allowed & ASYNC_MSG_REPLY:
                part.asserted &= ~ASYNC_MSG_REPLY
                return part.replied_value
            return woken
        return result

    def _idle(self) -> Thread:
        """Every thread is blocked while the NS side waits for a reply: sleep as TF-M's
        idle thread does (WFI) until an interrupt makes a thread runnable; a deadlock
        when nothing can fire."""
        port = self.port
        ns = self.ns.part
        for _ in range(_IDLE_WAKEUPS):
            if not port.wfi():
                break
            ready = self.ready
            if ready:
                self.attempted = False
                return self.by_rank[(ready & -ready).bit_length() - 1]
            if not blocked(ns):
                return self.ns
        self._deadlock()

    def _deadlock(self) -> NoReturn:
        port = self.port
        # Reported against the thread that blocked last, in the API it blocked in.
        cur = self.current.part
        api = "psa_wait"
        if awaiting_reply(cur):
            call = port.outstanding_call(cur)
            kind = call.type if call is not None else PSA_IPC_CALL
            api = {PSA_IPC_CONNECT: "psa_connect", PSA_IPC_DISCONNECT: "psa_close"}.get(
                kind, "psa_call"
            )
        port.halt(
            PanicRecord(cur.name, api, "deadlock: " + port.waits_description(), deadlock=True)
        )
