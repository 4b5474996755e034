"""The two SPM backends: one Protocol of TF-M's six operations, two implementations.

``SfnBackend``: one thread of control (the NS agent's), one stack, no
scheduler; messaging is a direct call of the service function.

``IpcBackend``: a greenlet thread per partition, a fixed-priority scheduler
(TF-M 2.3 priorities: the partition's ``load_order``; among equal values the
thread started first wins), and replies delivered through the
``ASYNC_MSG_REPLY`` signal as at TF-M HEAD.  A thread is blocked iff its
partition's ``waiting & ~asserted`` leaves nothing runnable; the ready set is
kept as a bit mask indexed by priority rank so that picking the next thread
does not grow with the number of partitions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import greenlet

from psaspm.consts import (
    ASYNC_MSG_REPLY,
    PSA_DOORBELL,
    PSA_ERROR_PROGRAMMER_ERROR,
    PSA_IPC_CALL,
    PSA_IPC_CONNECT,
    PSA_IPC_DISCONNECT,
    PSA_SUCCESS,
)
from psaspm.errors import ConfigError, InternalError, PanicRecord
from psaspm.kernel.door import DOOR, NO_SYSTEM
from psaspm.kernel.memory import boundary_need_switch
from psaspm.kernel.objects import Connection, RepliedCall
from psaspm.kernel.partition import PartitionRuntime
from psaspm.kernel.spm import NEED_SCHEDULE, SpeHalt, Spm
from psaspm.manifest.model import Model

NS_AGENT_PRIORITY = 0xFE00  # TF-M HEAD: the TrustZone agent's load_order, just above idle


class Backend(Protocol):
    """TF-M's backend operations (``secure_fw/spm/include/ffm/backend.h``, v1.6)."""

    def comp_init_assuredly(self, part: PartitionRuntime) -> None:
        """Prepare one partition's runtime (signals, thread); a failure is fatal."""

    def system_run(self) -> None:
        """Start the system: initialise partitions and run until the SPE is idle."""

    def messaging(self, conn: Connection) -> int:
        """Deliver a client's message to the service; the status, or NEED_SCHEDULE."""

    def replying(self, conn: Connection, value: int) -> int:
        """Deliver the service's reply ``value`` to the client."""

    def wait(self, part: PartitionRuntime, mask: int) -> int:
        """Signals of ``mask`` asserted on ``part``, blocking until one is."""

    def wake_up(self, part: PartitionRuntime, signal: int) -> None:
        """Assert ``signal`` on ``part``, making it runnable if it waits for it."""


def _allowed_signals(part: PartitionRuntime) -> int:
    signals = 0
    for svc in part.services:
        signals |= svc.signal
    for irq in part.irqs:
        signals |= irq.signal
    return signals


# --------------------------------------------------------------------------- SFN
class SfnBackend:
    def __init__(self, spm: Spm) -> None:
        self.spm = spm

    def comp_init_assuredly(self, part: PartitionRuntime) -> None:
        if part.manifest is not None and part.model is Model.IPC:
            # TF-M's Kconfig forbids the SFN backend with the mailbox NS agent.
            raise ConfigError(
                f"{part.name}: an IPC-model NS agent cannot run under the SFN backend "
                "(TF-M allows it in manifests but not in a build); disable it or use --backend ipc"
            )
        part.allowed = _allowed_signals(part)
        part.current_request = None

    def system_run(self) -> None:
        spm = self.spm
        for part in sorted(spm.partitions, key=lambda p: p.priority):
            if not part.inited and self._init(part) < 0:
                spm.fault("entry_init", "entry_init returned a negative status", part)

    def _init(self, part: PartitionRuntime) -> int:
        """Run an SFN partition's ``entry_init`` as the current component."""
        spm = self.spm
        previous = spm.current
        spm.current = part
        try:
            status = PSA_SUCCESS
            if part.init is not None:
                status = spm.run_partition_code(part, "entry_init", part.init)
                if status is None:
                    status = PSA_SUCCESS  # no return statement: success, as under IPC (sprt)
                elif status.__class__ is not int:
                    spm.fault("entry_init", f"entry_init returned {status!r}, not a status", part)
            part.inited = True
            return int(status)
        finally:
            spm.current = previous

    def messaging(self, conn: Connection) -> int:
        spm = self.spm
        svc = conn.service
        assert svc is not None
        target = svc.partition
        if target.current_request is not None:
            # Stricter than TF-M: manifests forbid cycles, but make re-entry loud.
            spm.fault("psa_call", f"{target.name} is already serving a request (re-entrant call)")
        if not target.inited and self._init(target) < 0:
            # TF-M: a failed lazy init reads as the service replying PROGRAMMER_ERROR.
            target.current_request = conn
            conn.received = True
            spm.current = target
            return PSA_ERROR_PROGRAMMER_ERROR
        target.current_request = conn
        conn.received = True
        spm.current = target
        sfn = svc.sfn
        if sfn is None:
            raise InternalError(f"{svc.name} has no service function")
        try:
            return sfn(conn.msg())
        except SpeHalt:
            raise
        except Exception as exc:
            spm.crash(target, svc.name.lower() + "_sfn", exc)

    def replying(self, conn: Connection, value: int) -> int:
        spm = self.spm
        spm.current.current_request = None
        client = conn.client
        assert client is not None
        spm.current = client
        return value

    def wait(self, part: PartitionRuntime, mask: int) -> int:
        spm = self.spm
        while True:
            ready = part.asserted & mask
            if ready:
                return ready
            if not spm.pending:
                spm.halt(
                    PanicRecord(
                        part.name,
                        "psa_wait",
                        f"deadlock: waiting for signals {mask:#x} under the SFN backend, "
                        "where only an interrupt can assert them, and no interrupt is pending",
                        deadlock=True,
                    )
                )
            spm.take_interrupts("thread")

    def wake_up(self, part: PartitionRuntime, signal: int) -> None:
        part.asserted |= signal

    def enter_ns(self) -> None:
        """Nothing to record: the NS agent's thread is the only thread."""

    def shutdown(self) -> None:
        """Nothing to end: the SFN backend has no threads of its own."""

    def preempt(self) -> None:
        """Nothing to switch to: signals asserted by interrupts wait for psa_wait."""


# --------------------------------------------------------------------------- IPC
class Thread:
    __slots__ = ("bit", "boundary", "glet", "name", "part", "rank")

    def __init__(self, part: PartitionRuntime) -> None:
        self.part = part
        self.name = part.name
        self.boundary = part.boundary  # fixed for the boot: read at every context switch
        self.rank = 0
        self.bit = 0
        self.glet: Any = None


class IpcBackend:
    def __init__(self, spm: Spm) -> None:
        self.spm = spm
        self.threads: list[Thread] = []
        self.by_rank: list[Thread] = []
        self.ready = 0  # bit r set: the partition thread of rank r is runnable
        self.attempted = False  # a thread more urgent than the running one became runnable
        ns = Thread(spm.ns_agent)
        spm.ns_agent.thread = ns
        spm.ns_agent.priority = NS_AGENT_PRIORITY
        self.ns = ns
        self.current = ns
        self.dead = False  # shut down: its threads are being ended

    def comp_init_assuredly(self, part: PartitionRuntime) -> None:
        part.allowed = _allowed_signals(part) | PSA_DOORBELL
        if part.is_ns_agent:
            # A mailbox NS agent (the TrustZone agent is built apart): asynchronous calls.
            part.allowed |= ASYNC_MSG_REPLY
            part.replied = deque()
        if part.entry is None:
            raise InternalError(f"{part.name} has no thread body")
        part.thread = Thread(part)
        self.threads.append(part.thread)

    def system_run(self) -> None:
        """Start every thread and run them until the SPE is idle."""
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
        self.spm.current = self.ns.part
        self.schedule(PSA_SUCCESS)

    def _thread_main(self, thread: Thread) -> Callable[[], None]:
        spm = self.spm
        part = thread.part

        def run() -> None:
            try:
                greenlet.getcurrent().parent.switch()  # parked until first scheduled
                entry = part.entry
                assert entry is not None
                spm.run_partition_code(part, "entry", entry)
                spm.fault("entry", "the partition's entry function returned", part)
            except SpeHalt as halt:
                if not self.dead:
                    self.ready = 0
                    self.ns.glet.throw(halt)
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
        previous = DOOR.iface, DOOR.system
        DOOR.iface = DOOR.system = NO_SYSTEM
        try:
            for thread in self.threads:
                glet = thread.glet
                if glet is not None and not glet.dead:
                    glet.parent = me
                    glet.throw(greenlet.GreenletExit)
        finally:
            DOOR.iface, DOOR.system = previous

    def enter_ns(self) -> None:
        """The NS agent thread is whichever greenlet makes the non-secure call."""
        self.ns.glet = greenlet.getcurrent()

    def preempt(self) -> None:
        """A preemption point outside the SPM: run threads an interrupt made more urgent."""
        spm = self.spm
        if self.attempted and not (spm.inside or spm.handler_mode or spm.taking):
            self.schedule(None)

    # ---- the six operations
    def messaging(self, conn: Connection) -> int:
        client = conn.client
        assert client is not None
        agent = client.replied is not None
        if agent and not self.spm.agent_acting:
            # Stricter than TF-M, where such a call would silently go asynchronous.
            self.spm.fault(
                "psa_call", "a mailbox NS agent calls services through agent_psa_call/connect/close"
            )
        svc = conn.service
        assert svc is not None
        svc.queue.append(conn)
        # wake_up(svc.partition, svc.signal), inline: every message comes this way.
        part = svc.partition
        signal = svc.signal
        part.asserted |= signal
        if part.waiting & signal:
            thread = part.thread
            self.ready |= thread.bit
            if thread.rank < self.current.rank:
                self.attempted = True
        if agent:
            # A mailbox agent's call is asynchronous: it does not block, and its reply
            # will carry the token the agent gave (TF-M's client_data).
            conn.client_data = self.spm.agent_client_data
            return PSA_SUCCESS
        client.waiting = ASYNC_MSG_REPLY
        self.ready &= ~client.thread.bit
        return NEED_SCHEDULE

    def replying(self, conn: Connection, value: int) -> int:
        client = conn.client
        assert client is not None
        client.replied_value = value
        if client.replied is not None:
            client.replied.append(
                RepliedCall(conn.handle, conn.type, conn.client_id, conn.client_data, value)
            )
        # wake_up(client, ASYNC_MSG_REPLY), inline: every reply comes this way.
        client.asserted |= ASYNC_MSG_REPLY
        if client.waiting & ASYNC_MSG_REPLY:
            thread = client.thread
            self.ready |= thread.bit
            if thread.rank < self.current.rank:
                self.attempted = True
        return PSA_SUCCESS

    def wait(self, part: PartitionRuntime, mask: int) -> int:
        ready = part.asserted & mask
        if ready:
            return ready
        part.waiting = mask
        self.ready &= ~part.thread.bit
        return NEED_SCHEDULE

    def wake_up(self, part: PartitionRuntime, signal: int) -> None:
        part.asserted |= signal
        if part.waiting & signal:
            thread = part.thread
            self.ready |= thread.bit
            if thread.rank < self.current.rank:
                self.attempted = True

    # ---- PendSV
    def schedule(self, result: Any) -> Any:
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
                self._deadlock()
        cur = self.current
        if nxt is not cur:
            # The context switch, inline (two per IPC call).
            spm = self.spm
            self.current = nxt
            spm.current = nxt.part
            counters = spm.counters
            if counters is not None:
                counters.context_switches += 1
                before = cur.boundary
                after = nxt.boundary
                # Equal boundaries never need a switch: skip the HAL call in the common case.
                if before != after and boundary_need_switch(before, after):
                    counters.boundary_switches += 1
            if spm.tracer is not None:
                spm.tracer.switch(cur.name, nxt.name)
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

    def _deadlock(self) -> None:
        spm = self.spm
        # Reported against the thread that blocked last, in the API it blocked in.
        cur = self.current.part
        api = "psa_wait"
        if cur.waiting == ASYNC_MSG_REPLY and not cur.allowed & ASYNC_MSG_REPLY:
            pending = [c for c in spm.pool.live.values() if c.client is cur]
            kind = pending[0].type if pending else PSA_IPC_CALL
            api = {PSA_IPC_CONNECT: "psa_connect", PSA_IPC_DISCONNECT: "psa_close"}.get(
                kind, "psa_call"
            )
        spm.halt(PanicRecord(cur.name, api, "deadlock: " + spm.waits_description(), deadlock=True))


def blocked(part: PartitionRuntime) -> bool:
    """The derived thread state (IPC backend): waiting for signals none of which is asserted."""
    return bool(part.waiting) and not part.waiting & part.asserted
