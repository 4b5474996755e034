"""The IPC backend: TF-M's six operations over the greenlet scheduler.

Messages wake the service's thread through its service signal; replies wake
the client through ``ASYNC_MSG_REPLY`` as at TF-M HEAD.  A mailbox NS agent's
calls are asynchronous: they never block it, and their replies queue on the
agent for ``psa_get(ASYNC_MSG_REPLY)``.
"""

from __future__ import annotations

from collections import deque

from psaspm.consts import ASYNC_MSG_REPLY, PSA_DOORBELL, PSA_SUCCESS
from psaspm.errors import InternalError
from psaspm.kernel.contract import NEED_SCHEDULE
from psaspm.kernel.objects import RepliedCall
from psaspm.kernel.runtime import Connection, PartitionRuntime, allowed_signals
from psaspm.kernel.scheduler import Scheduler


class IpcBackend(Scheduler):
    # ---- the six operations
    def comp_init_assuredly(self, part: PartitionRuntime) -> None:
        part.allowed = allowed_signals(part) | PSA_DOORBELL
        if part.is_ns_agent:
            # A mailbox NS agent (the TrustZone agent is built apart): asynchronous calls.
            part.allowed |= ASYNC_MSG_REPLY
            part.replied = deque()
        if part.entry is None:
            raise InternalError(f"{part.name} has no thread body")
        self.add_thread(part)

    def system_run(self) -> None:
        """Start every thread and run them until the SPE is idle."""
        self.start()

    def messaging(self, conn: Connection) -> int:
        client = conn.client
        assert client is not None
        if client.replied is not None and not conn.asynchronous:
            # Stricter than TF-M, where such a call would silently go asynchronous.
            self.port.fault(
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
        if conn.asynchronous:
            # A mailbox agent's call does not block; its reply will carry the token the
            # agent gave (TF-M's client_data).
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

    def retire(self, conn: Connection) -> None:
        """Nothing to undo: the message never blocked its client."""

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
