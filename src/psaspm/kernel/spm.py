"""The SPM frontend: every PSA API's checks and effects, named by caller role.

``client_*`` functions act for the partition (or NS agent) calling a service;
``partition_*`` functions act for a partition serving messages or handling its
signals; ``agent_*`` functions act for a mailbox NS agent on behalf of one of
its NS clients.  They return PSA statuses (a :class:`Rejected` status, which
carries why, for a call the SPM refused), or ``NEED_SCHEDULE`` when the caller
must block; the interface layer turns programmer-error statuses into panics
for secure callers (TF-M's ``spm_handle_programmer_errors``).  Errors that
FF-M makes fatal (a partition misusing the service API) halt the SPE through
:meth:`Spm.fault`.  Every check runs before any state changes, so a rejected
call has no partial effect.

The interrupt sources and their APIs are :mod:`psaspm.kernel.interrupts`; the
memory model is :mod:`psaspm.kernel.memory`.  Backends reach this class only
through :class:`~psaspm.kernel.contract.SpmPort`.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from psaspm.consts import (
    ASYNC_MSG_REPLY,
    PSA_BLOCK,
    PSA_DOORBELL,
    PSA_ERROR_CONNECTION_BUSY,
    PSA_ERROR_CONNECTION_REFUSED,
    PSA_ERROR_PROGRAMMER_ERROR,
    PSA_FRAMEWORK_VERSION,
    PSA_IPC_CALL,
    PSA_IPC_CONNECT,
    PSA_IPC_DISCONNECT,
    PSA_MAX_IOVEC,
    PSA_NULL_HANDLE,
    PSA_SUCCESS,
    PSA_VERSION_NONE,
    STATIC_HANDLE_NUM_LIMIT,
)
from psaspm.errors import PanicRecord, is_psaspm_file
from psaspm.kernel.contract import (
    NEED_SCHEDULE,
    Backend,
    Inside,
    Preempted,
    Rejected,
    SpeHalt,
    WatchdogExpired,
)
from psaspm.kernel.interrupts import Interrupts
from psaspm.kernel.memory import AddressSpace, MemoryFault, Ptr
from psaspm.kernel.objects import (
    MM_ACCESSED,
    MM_MAPPED,
    MM_UNMAPPED,
    Buffer,
    ConnStatus,
    InVec,
    OutVec,
    PsaMsg,
)
from psaspm.kernel.runtime import (
    Connection,
    ConnectionPool,
    PartitionRuntime,
    ServiceRuntime,
    awaiting_reply,
    blocked,
)

if TYPE_CHECKING:
    from psaspm.kernel.instruments import Counters, Tracer

_STATIC_BIT = 1 << 30
# Bits a stateless handle may have: indicator, version byte and the 5-bit index.
_STATIC_VALID = _STATIC_BIT | 0xFF00 | 0x1F
_CALL_TYPE_MAX = 0x7FFF  # types travel as int16 in TF-M's control word
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
# psa_wait calls in a row returning a waiting message that psa_get never takes: stuck.
STUCK_WAITS = 10_000


def partition_traceback(exc: BaseException) -> tuple[list[traceback.FrameSummary], str]:
    """Partition code's frames in ``exc``'s traceback (outermost first), and the
    traceback text with only those (all frames if none is outside psaspm, as for
    psaspm's own agents)."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if not is_psaspm_file(f.filename)]
    shown = own or list(frames)
    text = "Traceback (most recent call last):\n" + "".join(
        traceback.format_list(traceback.StackSummary.from_list(shown))
    )
    text += "".join(traceback.format_exception_only(type(exc), exc))
    return own, text


class AgentCall:
    """A mailbox NS agent's call on behalf of NS client ``client_id``, with its token."""

    __slots__ = ("client_data", "client_id")

    def __init__(self, client_id: int, client_data: Any) -> None:
        self.client_id = client_id
        self.client_data = client_data


class Spm:
    """The kernel of one booted system."""

    def __init__(
        self,
        partitions: Sequence[PartitionRuntime],
        ns_agent: PartitionRuntime,
        max_connections: int,
        lifecycle: int,
        memory: AddressSpace,
        counters: Counters | None,
        tracer: Tracer | None,
        wfi: Callable[[], bool],
    ) -> None:
        self._partitions = tuple(partitions)
        self.ns_agent = ns_agent
        self.by_pid: dict[int, PartitionRuntime] = {p.pid: p for p in partitions}
        self.by_sid: dict[int, ServiceRuntime] = {}
        self.static: list[ServiceRuntime | None] = [None] * STATIC_HANDLE_NUM_LIMIT
        for part in partitions:
            for svc in part.services:
                self.by_sid[svc.sid] = svc
                slot = svc.manifest.stateless_slot
                if slot is not None:
                    self.static[slot] = svc
        self.pool = ConnectionPool(max_connections)
        self.lifecycle = lifecycle
        self.memory = memory
        self.counters = counters
        self.tracer = tracer
        self._wfi = wfi  # the platform's wait for interrupt: advance time to the next event
        # The watchdog's hand-over (psaspm.watchdog): who ran when it fired, and its limit.
        self.watchdog_took: Callable[[], str] | None = None
        self.watchdog_seconds = 0.0
        self.current: PartitionRuntime = ns_agent  # the running partition
        self.backend: Backend  # set once by the system builder, before boot
        self.halted: PanicRecord | None = None
        self.handler_mode = False  # True while a FLIH runs: partition code in handler mode
        # How the SPM was entered while it runs a PSA API (contract.Inside's invariant).
        self.inside = Inside.NONE
        self.interrupts = Interrupts(self, partitions)

    @property
    def partitions(self) -> Sequence[PartitionRuntime]:
        return self._partitions

    # ------------------------------------------------------------------ panics
    def halt(self, record: PanicRecord) -> NoReturn:
        """Stop the SPE (TF-M's ``tfm_core_panic``): record why and unwind."""
        if self.halted is None:
            self.halted = record
            if self.counters is not None:
                self.counters.panics += 1
            if self.tracer is not None:
                self.tracer.panic(record.partition, record.api, record.reason)
        raise SpeHalt(self.halted)

    def fault(self, api: str, reason: str, partition: PartitionRuntime | None = None) -> NoReturn:
        """A PROGRAMMER ERROR that FF-M makes fatal, by ``partition`` (default: the caller)."""
        who = partition if partition is not None else self.current
        self.halt(PanicRecord(who.name, api, reason))

    def crash(self, partition: PartitionRuntime, api: str, exc: Exception) -> NoReturn:
        """Partition code raised a Python exception: a panic of that partition.

        ``api`` becomes the partition function that was entered (the outermost frame
        of partition code), and the record keeps the traceback of partition code's
        own frames (psaspm's are trimmed).
        """
        own, text = partition_traceback(exc)
        reason = f"{type(exc).__name__}: {exc}"
        self.halt(PanicRecord(partition.name, own[0].name if own else api, reason, text))

    def programmer_error(self, caller: PartitionRuntime, api: str, status: int) -> int:
        """TF-M's rule: PROGRAMMER_ERROR and CONNECTION_REFUSED are fatal for secure callers.

        The TrustZone NS agent gets the status still carrying its reason (the system
        hands it to ``ns.last_error``); partition code always gets a plain int.
        """
        if (
            status in (PSA_ERROR_PROGRAMMER_ERROR, PSA_ERROR_CONNECTION_REFUSED)
        ) and not caller.is_ns_agent:
            name = (
                "PSA_ERROR_PROGRAMMER_ERROR"
                if status == PSA_ERROR_PROGRAMMER_ERROR
                else "PSA_ERROR_CONNECTION_REFUSED"
            )
            reason = status.reason if isinstance(status, Rejected) else "refused by the SPM"
            self.fault(api, f"{name}: {reason}", caller)
        return status if caller is self.ns_agent else int(status)

    # ------------------------------------------------------------- client API
    def client_framework_version(self) -> int:
        return PSA_FRAMEWORK_VERSION

    def _authorized(self, caller: PartitionRuntime, svc: ServiceRuntime) -> bool:
        if caller.is_ns_agent:
            return svc.ns_ok
        return svc.sid in caller.deps

    def client_version(self, sid: int) -> int:
        svc = self.by_sid.get(sid)
        if svc is None or not self._authorized(self.current, svc):
            return PSA_VERSION_NONE
        return svc.version

    def client_connect(self, sid: int, version: int, agent: AgentCall | None = None) -> int:
        caller = self.current
        client_id = caller.client_id if agent is None else agent.client_id
        svc = self.by_sid.get(sid) if type(sid) is int else None
        if svc is None:
            return Rejected(PSA_ERROR_CONNECTION_REFUSED, f"no service with SID {sid!r}")
        if not svc.connection_based:
            return Rejected(
                PSA_ERROR_PROGRAMMER_ERROR,
                f"psa_connect to {svc.name}, a stateless service (call it through its static handle)",
            )
        if not self._authorized(caller, svc):
            return Rejected(PSA_ERROR_CONNECTION_REFUSED, self._denied(caller, svc))
        if type(version) is not int or not svc.version_ok(version):
            return Rejected(
                PSA_ERROR_CONNECTION_REFUSED,
                f"version {version!r} refused by {svc.name} "
                f"(version {svc.version}, {'STRICT' if svc.strict else 'RELAXED'})",
            )
        conn = self.pool.allocate(svc, caller, client_id)
        if conn is None:
            return Rejected(PSA_ERROR_CONNECTION_BUSY, "the connection pool is full")
        conn.set_message(PSA_IPC_CONNECT, (), ())
        return self._deliver(conn, agent)

    def _denied(self, caller: PartitionRuntime, svc: ServiceRuntime) -> str:
        if caller.is_ns_agent:
            return f"{svc.name} does not accept non-secure clients"
        return f"{svc.name} is not among the dependencies of {caller.name}"

    def client_call(
        self,
        handle: int,
        type: int,
        in_vecs: Sequence[InVec],
        out_vecs: Sequence[OutVec],
        agent: AgentCall | None = None,
    ) -> int:
        caller = self.current
        counters = self.counters
        if counters is not None:
            counters.psa_calls += 1
        if type.__class__ is not int or type < PSA_IPC_CALL or type > _CALL_TYPE_MAX:
            return Rejected(
                PSA_ERROR_PROGRAMMER_ERROR, f"call type {type!r} is not in 0..{_CALL_TYPE_MAX}"
            )
        ins = in_vecs if in_vecs.__class__ is tuple else tuple(in_vecs)
        outs = out_vecs if out_vecs.__class__ is tuple else tuple(out_vecs)
        if len(ins) + len(outs) > PSA_MAX_IOVEC:
            return Rejected(
                PSA_ERROR_PROGRAMMER_ERROR,
                f"{len(ins)} in-vectors + {len(outs)} out-vectors exceed PSA_MAX_IOVEC ({PSA_MAX_IOVEC})",
            )
        pointers = False
        for vec in ins:
            cls = vec.__class__
            if cls is not bytes and cls is not bytearray:
                if cls is Ptr:
                    pointers = True
                elif not self._plain_view(vec):
                    return Rejected(
                        PSA_ERROR_PROGRAMMER_ERROR,
                        f"in-vector {vec!r:.40} is not bytes, bytearray, a byte memoryview or a Ptr",
                    )
        for out in outs:
            cls = out.__class__
            if cls is not bytearray:
                if cls is Ptr:
                    pointers = True
                else:
                    return Rejected(
                        PSA_ERROR_PROGRAMMER_ERROR,
                        f"out-vector {out!r:.40} is not a bytearray or a Ptr",
                    )
        out_ptrs = None
        if pointers:
            checked = self._check_pointers(caller, ins, outs)
            if isinstance(checked, int):
                return checked
            ins, outs, out_ptrs = checked
        if handle.__class__ is not int or handle <= PSA_NULL_HANDLE:
            return Rejected(PSA_ERROR_PROGRAMMER_ERROR, f"invalid handle {handle!r}")
        client_id = caller.client_id if agent is None else agent.client_id
        if handle & _STATIC_BIT:
            svc = self.static[handle & 0x1F] if handle & ~_STATIC_VALID == 0 else None
            if svc is None:
                return Rejected(
                    PSA_ERROR_PROGRAMMER_ERROR, f"{handle:#x} is no stateless service's handle"
                )
            if not self._authorized(caller, svc):
                return Rejected(PSA_ERROR_CONNECTION_REFUSED, self._denied(caller, svc))
            if not svc.version_ok((handle >> 8) & 0xFF):
                return Rejected(
                    PSA_ERROR_PROGRAMMER_ERROR,
                    f"handle {handle:#x} carries version {(handle >> 8) & 0xFF}, "
                    f"refused by {svc.name} (version {svc.version})",
                )
            conn = self.pool.allocate(svc, caller, client_id)
            if conn is None:
                return Rejected(PSA_ERROR_CONNECTION_BUSY, "the connection pool is full")
            conn.stateless = True
        else:
            found = self.pool.lookup(handle)
            if found is None or found.stateless:
                return Rejected(
                    PSA_ERROR_PROGRAMMER_ERROR, f"handle {handle:#x} is not an open connection"
                )
            if found.client_id != client_id:
                return Rejected(
                    PSA_ERROR_PROGRAMMER_ERROR,
                    f"handle {handle:#x} belongs to client {found.client_id}, not {client_id}",
                )
            if found.status is not ConnStatus.IDLE:
                return Rejected(
                    PSA_ERROR_PROGRAMMER_ERROR, f"connection {handle:#x} has a call in progress"
                )
            conn = found
        # Pointer vectors were resolved to views of the modelled memory above.
        conn.set_message(type, ins, outs)  # type: ignore[arg-type]
        if out_ptrs is not None:
            conn.out_ptrs = out_ptrs
        return self._deliver(conn, agent)

    def _check_pointers(
        self, caller: PartitionRuntime, ins: tuple[Any, ...], outs: tuple[Any, ...]
    ) -> int | tuple[tuple[Buffer, ...], tuple[Any, ...], tuple[Ptr | None, ...]]:
        """TF-M's client memory check for raw pointer vectors, against the caller's boundary.

        In-vectors must be readable and must not overlap; out-vectors must be
        writable.  A failure is a programmer error of the caller.
        """
        memory = self.memory
        subject = caller.subject
        spans: list[tuple[int, int]] = []
        views: list[Buffer] = []
        for index, vec in enumerate(ins):
            if vec.__class__ is not Ptr:
                views.append(vec)
                continue
            if vec.len == 0:
                views.append(b"")
                continue
            try:
                region = memory.check(subject, vec.addr, vec.len, write=False)
            except MemoryFault as fault:
                return Rejected(PSA_ERROR_PROGRAMMER_ERROR, f"in-vector {index}: {fault}")
            if region.device is not None:
                return Rejected(
                    PSA_ERROR_PROGRAMMER_ERROR, f"in-vector {index} points at device registers"
                )
            spans.append((vec.addr, vec.addr + vec.len))
            views.append(memory.view(region, vec.addr, vec.len))
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start < end:
                return Rejected(PSA_ERROR_PROGRAMMER_ERROR, "two in-vectors overlap")
        outs_checked: list[Any] = []
        ptrs: list[Ptr | None] = []
        for index, out in enumerate(outs):
            if out.__class__ is not Ptr:
                outs_checked.append(out)
                ptrs.append(None)
                continue
            try:
                region = memory.check(subject, out.addr, out.len, write=True)
            except MemoryFault as fault:
                return Rejected(PSA_ERROR_PROGRAMMER_ERROR, f"out-vector {index}: {fault}")
            if region.device is not None:
                return Rejected(
                    PSA_ERROR_PROGRAMMER_ERROR, f"out-vector {index} points at device registers"
                )
            outs_checked.append(memory.view(region, out.addr, out.len) if out.len else bytearray())
            ptrs.append(out)
        return tuple(views), tuple(outs_checked), tuple(ptrs)

    @staticmethod
    def _plain_view(vec: object) -> bool:
        if not isinstance(vec, memoryview):
            return False
        try:
            return vec.format == "B" and vec.contiguous
        except ValueError:  # a released view
            return False

    def _deliver(self, conn: Connection, agent: AgentCall | None) -> int:
        conn.status = ConnStatus.ACTIVE
        if agent is not None:
            conn.asynchronous = True
            conn.client_data = agent.client_data
        counters = self.counters
        if counters is not None:
            counters.messages += 1
        tracer = self.tracer
        if tracer is not None:
            svc = conn.service
            assert svc is not None
            tracer.message(self.current.name, svc.partition.name, svc.name, conn.handle, conn.type)
        return self.backend.messaging(conn)

    def client_close(self, handle: int, agent: AgentCall | None = None) -> int:
        caller = self.current
        client_id = caller.client_id if agent is None else agent.client_id
        if handle == PSA_NULL_HANDLE:
            return PSA_SUCCESS
        if handle.__class__ is not int or handle < 0 or handle & _STATIC_BIT:
            return Rejected(
                PSA_ERROR_PROGRAMMER_ERROR, f"psa_close of {handle!r}, not a connection handle"
            )
        conn = self.pool.lookup(handle)
        if conn is None or conn.stateless:
            return Rejected(
                PSA_ERROR_PROGRAMMER_ERROR, f"handle {handle:#x} is not an open connection"
            )
        if conn.client_id != client_id:
            return Rejected(
                PSA_ERROR_PROGRAMMER_ERROR,
                f"handle {handle:#x} belongs to client {conn.client_id}, not {client_id}",
            )
        if conn.status is not ConnStatus.IDLE:
            return Rejected(
                PSA_ERROR_PROGRAMMER_ERROR, f"connection {handle:#x} has a call in progress"
            )
        conn.set_message(PSA_IPC_DISCONNECT, (), ())
        return self._deliver(conn, agent)

    # ------------------------------------------------- mailbox NS agent API
    # TF-M HEAD's mailbox_agent_api.c: a mailbox NS agent calls on behalf of an NS
    # client whose (translated) ID it passes; the call does not block the agent, and
    # the reply comes back through ASYNC_MSG_REPLY with ``client_data`` attached.
    def _agent(self, api: str, client_id: int, client_data: Any) -> AgentCall:
        if self.current.replied is None:
            self.fault(api, "only a mailbox NS agent may use the agent API")
        if client_id.__class__ is not int or not _INT32_MIN <= client_id < 0:
            self.fault(api, f"NS client ID {client_id!r} is not a negative 32-bit integer")
        return AgentCall(client_id, client_data)

    def agent_call(
        self,
        handle: int,
        type: int,
        in_vecs: Sequence[InVec],
        out_vecs: Sequence[OutVec],
        client_id: int,
        client_data: Any = None,
    ) -> int:
        agent = self._agent("agent_psa_call", client_id, client_data)
        return self.client_call(handle, type, in_vecs, out_vecs, agent)

    def agent_connect(self, sid: int, version: int, client_id: int, client_data: Any = None) -> int:
        agent = self._agent("agent_psa_connect", client_id, client_data)
        return self.client_connect(sid, version, agent)

    def agent_close(self, handle: int, client_id: int, client_data: Any = None) -> int:
        """PSA_SUCCESS once a DISCONNECT is on its way (its reply comes through
        ASYNC_MSG_REPLY); a negative status if the handle is refused.  Unlike
        ``psa_close``, a null handle is refused too: no reply would ever come."""
        agent = self._agent("agent_psa_close", client_id, client_data)
        if handle == PSA_NULL_HANDLE:
            return Rejected(PSA_ERROR_PROGRAMMER_ERROR, "agent_psa_close of the null handle")
        return self.client_close(handle, agent)

    # ---------------------------------------------------------- service API
    def partition_wait(self, signal_mask: int, timeout: int) -> int:
        part = self.current
        if signal_mask.__class__ is not int or not part.allowed & signal_mask:
            self.fault(
                "psa_wait",
                f"signal mask {signal_mask!r} contains none of the partition's signals "
                f"({part.allowed:#x})",
            )
        if timeout & PSA_BLOCK:
            result = self.backend.wait(part, signal_mask)
            if result == NEED_SCHEDULE:
                return result
        else:
            result = part.asserted & signal_mask
        if result & part.service_signals:
            # Returned at once with a message waiting: a partition that keeps doing this
            # without psa_get is stuck in a busy loop (psaspm is stricter than TF-M).
            part.spins += 1
            if part.spins > STUCK_WAITS:
                self.fault(
                    "psa_wait",
                    f"stuck: psa_wait returned service signals {result & part.service_signals:#x} "
                    f"{STUCK_WAITS} times in a row without psa_get taking the message",
                )
        return result

    def partition_get(self, signal: int) -> PsaMsg:
        part = self.current
        if signal.__class__ is not int or signal <= 0 or signal & (signal - 1):
            self.fault("psa_get", f"signal {signal!r} is not exactly one bit")
        if not part.asserted & signal:
            self.fault("psa_get", f"signal {signal:#x} is not asserted")
        svc = part.service_by_signal.get(signal)
        if svc is None:
            if signal == ASYNC_MSG_REPLY and part.replied:
                return self._collect_reply(part)
            # Stricter than TF-M, which returns PSA_ERROR_DOES_NOT_EXIST here.
            self.fault(
                "psa_get", f"signal {signal:#x} is not a service signal: it carries no message"
            )
        part.spins = 0
        queue = svc.queue
        conn = queue.popleft()
        if not queue:
            part.asserted &= ~signal
        conn.received = True
        return conn.msg()

    def _collect_reply(self, agent: PartitionRuntime) -> PsaMsg:
        """``psa_get(ASYNC_MSG_REPLY)`` by a mailbox agent: the oldest replied call.

        ``msg.rhandle`` is the :class:`RepliedCall` (TF-M: the connection), whose
        ``client_data`` and ``replied_value`` the agent reads.  The connection
        itself was already returned to the pool or made idle by the reply.
        """
        replied = agent.replied
        assert replied is not None
        done = replied.popleft()
        if not replied:
            agent.asserted &= ~ASYNC_MSG_REPLY
        zeros = (0, 0, 0, 0)
        return PsaMsg(done.type, done.handle, done.client_id, done, zeros, zeros)

    def _message(self, api: str, msg_handle: int) -> Connection:
        """The connection behind a message handle the running partition is serving."""
        conn = self.pool.live.get(msg_handle) if msg_handle.__class__ is int else None
        if (
            conn is None
            or conn.status is not ConnStatus.ACTIVE
            or not conn.received
            or conn.service is None
            or conn.service.partition is not self.current
        ):
            self.fault(
                api, f"{msg_handle!r} is not the handle of a message this partition received"
            )
        return conn

    def _request(self, api: str, msg_handle: int, index: int) -> Connection:
        conn = self._message(api, msg_handle)
        if conn.type < PSA_IPC_CALL:
            self.fault(
                api,
                f"message {msg_handle:#x} is a {'CONNECT' if conn.type == PSA_IPC_CONNECT else 'DISCONNECT'}, which has no vectors",
            )
        if index.__class__ is not int or not 0 <= index < PSA_MAX_IOVEC:
            self.fault(api, f"vector index {index!r} is not in 0..{PSA_MAX_IOVEC - 1}")
        return conn

    def partition_read(self, msg_handle: int, index: int, num_bytes: int) -> bytes:
        conn = self._request("psa_read", msg_handle, index)
        if num_bytes.__class__ is not int or num_bytes < 0:
            self.fault("psa_read", f"num_bytes {num_bytes!r} is not a size")
        if conn.service is not None and conn.service.mm_iovec:
            self._mm_access("psa_read", conn, index)
        if index >= len(conn.invecs):
            return b""
        pos = conn.in_pos[index]
        end = min(pos + num_bytes, conn.in_size[index])
        conn.in_pos[index] = end
        data = conn.invecs[index][pos:end]
        return data if data.__class__ is bytes else bytes(data)

    def partition_skip(self, msg_handle: int, index: int, num_bytes: int) -> int:
        conn = self._request("psa_skip", msg_handle, index)
        if num_bytes.__class__ is not int or num_bytes < 0:
            self.fault("psa_skip", f"num_bytes {num_bytes!r} is not a size")
        if conn.service is not None and conn.service.mm_iovec:
            self._mm_access("psa_skip", conn, index)
        if index >= len(conn.invecs):
            return 0
        pos = conn.in_pos[index]
        end = min(pos + num_bytes, conn.in_size[index])
        conn.in_pos[index] = end
        return end - pos

    def partition_write(self, msg_handle: int, index: int, data: Buffer) -> None:
        conn = self._request("psa_write", msg_handle, index)
        try:
            size = memoryview(data).nbytes
        except TypeError:
            self.fault("psa_write", f"data {data!r:.40} is not bytes-like")
        if conn.service is not None and conn.service.mm_iovec:
            self._mm_access("psa_write", conn, index + 4)
        room = conn.out_size[index] - (conn.out_written[index] if index < len(conn.outvecs) else 0)
        if size > room:
            self.fault(
                "psa_write",
                f"writing {size} bytes to out-vector {index}, which has room for {room}",
            )
        if size:
            written = conn.out_written[index]
            conn.outvecs[index][written : written + size] = data
            conn.out_written[index] = written + size

    def _mm_access(self, api: str, conn: Connection, vec: int) -> None:
        state = (conn.mm >> (4 * vec)) & 0xF
        if state & MM_MAPPED:
            self.fault(api, f"vector {vec % 4} is mapped: it cannot also be accessed with {api}")
        conn.mm |= MM_ACCESSED << (4 * vec)

    def partition_reply(self, msg_handle: int, status: int) -> int:
        conn = self._message("psa_reply", msg_handle)
        if conn is self.current.current_request:
            # SFN backend: the message the service function is running for; its return
            # value is the reply (psaspm is stricter: TF-M leaves this undefined).
            self.fault(
                "psa_reply", "an SFN service returns its status instead of calling psa_reply"
            )
        return self.reply(conn, status)

    def reply(self, conn: Connection, status: int) -> int:
        """``psa_reply`` to a message already known to be the running partition's."""
        if status.__class__ is not int or not _INT32_MIN <= status <= _INT32_MAX:
            self.fault("psa_reply", f"status {status!r} is not a 32-bit integer")
        keep = True
        kind = conn.type
        if kind == PSA_IPC_CONNECT:
            if status == PSA_SUCCESS:
                value = conn.handle
            elif status in (PSA_ERROR_CONNECTION_REFUSED, PSA_ERROR_CONNECTION_BUSY):
                value = status
                keep = False
            else:
                self.fault(
                    "psa_reply",
                    f"status {status} for a CONNECT message: only PSA_SUCCESS, "
                    "PSA_ERROR_CONNECTION_REFUSED or PSA_ERROR_CONNECTION_BUSY are allowed",
                )
        elif kind == PSA_IPC_DISCONNECT:
            value = PSA_SUCCESS  # the status of a DISCONNECT reply is ignored
            keep = False
        else:
            value = status
            keep = not conn.stateless
            outs = conn.outvecs
            if outs:
                if conn.mapped:
                    conn.release_views()
                written = conn.out_written
                mm = conn.mm
                ptrs = conn.out_ptrs
                for i, buf in enumerate(outs):
                    n = written[i]
                    if mm and (mm >> (4 * (i + 4))) & (MM_MAPPED | MM_UNMAPPED) == MM_MAPPED:
                        n = 0  # mapped and never unmapped: nothing counts as written
                    ptr = ptrs[i] if ptrs is not None else None
                    if ptr is not None:
                        ptr.len = n
                    elif len(buf) != n:
                        del buf[n:]
            if value == PSA_ERROR_PROGRAMMER_ERROR:
                client = conn.client
                assert client is not None
                if conn.client_id >= 0:
                    svc = conn.service
                    assert svc is not None
                    self.fault(
                        "psa_call",
                        f"{svc.name} replied PSA_ERROR_PROGRAMMER_ERROR to this secure client",
                        client,
                    )
                keep = False  # a non-secure client's connection ends (FF-M 1.1 psa_reply)
        tracer = self.tracer
        if tracer is not None:
            client = conn.client
            assert client is not None
            tracer.reply(self.current.name, client.name, conn.handle, value)
        if conn.terminated:
            # The DISCONNECT the SPM sent for a terminated connection: nobody waits for it.
            self.backend.retire(conn)
            self.pool.free(conn)
            return PSA_SUCCESS
        result = self.backend.replying(conn, value)
        if keep:
            conn.status = ConnStatus.IDLE
        elif value == PSA_ERROR_PROGRAMMER_ERROR and not conn.stateless:
            self._terminate(conn)
        else:
            self.pool.free(conn)
        return result

    def _terminate(self, conn: Connection) -> None:
        """End a connection whose service replied PROGRAMMER_ERROR to a non-secure client:
        deliver a DISCONNECT for it right after that reply, so the service can free
        what it holds (FF-M 1.1, psa_reply).  Until that DISCONNECT is replied the
        handle is busy; then it is gone: later calls and closes are refused without
        reaching the service."""
        conn.set_message(PSA_IPC_DISCONNECT, (), ())
        conn.terminated = True
        conn.asynchronous = True  # the client does not wait for this one
        client = self.current
        result = self._deliver(conn, None)
        if conn.received and conn.status is ConnStatus.ACTIVE:
            # A direct call (SFN backend): the service already ran; its return is the reply.
            self.reply(conn, result)
        self.current = client

    def partition_set_rhandle(self, msg_handle: int, rhandle: Any) -> None:
        conn = self._message("psa_set_rhandle", msg_handle)
        if conn.stateless:
            self.fault("psa_set_rhandle", "a stateless service's message has no reverse handle")
        conn.rhandle = rhandle

    def partition_notify(self, partition_id: int) -> None:
        target = self.by_pid.get(partition_id) if partition_id.__class__ is int else None
        if target is None or not target.allowed & PSA_DOORBELL:
            self.fault("psa_notify", f"no partition with ID {partition_id!r} has a doorbell")
        self.backend.wake_up(target, PSA_DOORBELL)

    def partition_clear(self) -> None:
        part = self.current
        if not part.asserted & PSA_DOORBELL:
            self.fault("psa_clear", "PSA_DOORBELL is not asserted")
        part.asserted &= ~PSA_DOORBELL

    def partition_lifecycle(self) -> int:
        return self.lifecycle

    def partition_panic(self) -> NoReturn:
        self.fault("psa_panic", "the partition called psa_panic()")

    # --------------------------------------------------------------- MM-IOVEC
    def _mm_vector(self, api: str, msg_handle: int, index: int, vec: int) -> Connection:
        conn = self._request(api, msg_handle, index)
        svc = conn.service
        assert svc is not None
        if not svc.mm_iovec:
            self.fault(api, f"{svc.name} does not have mm_iovec enabled")
        return conn

    def partition_map_invec(self, msg_handle: int, index: int) -> memoryview:
        conn = self._mm_vector("psa_map_invec", msg_handle, index, index)
        state = (conn.mm >> (4 * index)) & 0xF
        if conn.in_size[index] == 0:
            self.fault("psa_map_invec", f"in-vector {index} is empty")
        if state & MM_MAPPED:
            self.fault("psa_map_invec", f"in-vector {index} is already mapped")
        if state & MM_ACCESSED:
            self.fault(
                "psa_map_invec", f"in-vector {index} was already accessed by psa_read or psa_skip"
            )
        conn.mm |= MM_MAPPED << (4 * index)
        view = memoryview(conn.invecs[index]).toreadonly()
        conn.mapped.append(view)
        return view

    def partition_unmap_invec(self, msg_handle: int, index: int) -> None:
        conn = self._mm_vector("psa_unmap_invec", msg_handle, index, index)
        state = (conn.mm >> (4 * index)) & 0xF
        if not state & MM_MAPPED:
            self.fault("psa_unmap_invec", f"in-vector {index} is not mapped")
        if state & MM_UNMAPPED:
            self.fault("psa_unmap_invec", f"in-vector {index} is already unmapped")
        conn.mm |= MM_UNMAPPED << (4 * index)

    def partition_map_outvec(self, msg_handle: int, index: int) -> memoryview:
        conn = self._mm_vector("psa_map_outvec", msg_handle, index, index + 4)
        state = (conn.mm >> (4 * (index + 4))) & 0xF
        if conn.out_size[index] == 0:
            self.fault("psa_map_outvec", f"out-vector {index} is empty")
        if state & MM_MAPPED:
            self.fault("psa_map_outvec", f"out-vector {index} is already mapped")
        if state & MM_ACCESSED:
            self.fault("psa_map_outvec", f"out-vector {index} was already written by psa_write")
        conn.mm |= MM_MAPPED << (4 * (index + 4))
        view = memoryview(conn.outvecs[index])
        conn.mapped.append(view)
        return view

    def partition_unmap_outvec(self, msg_handle: int, index: int, length: int) -> None:
        conn = self._mm_vector("psa_unmap_outvec", msg_handle, index, index + 4)
        state = (conn.mm >> (4 * (index + 4))) & 0xF
        if not state & MM_MAPPED:
            self.fault("psa_unmap_outvec", f"out-vector {index} is not mapped")
        if state & MM_UNMAPPED:
            self.fault("psa_unmap_outvec", f"out-vector {index} is already unmapped")
        if length.__class__ is not int or not 0 <= length <= conn.out_size[index]:
            self.fault(
                "psa_unmap_outvec",
                f"length {length!r} is not in 0..{conn.out_size[index]} (the out-vector's size)",
            )
        conn.mm |= MM_UNMAPPED << (4 * (index + 4))
        conn.out_written[index] = length

    # ---------------------------------------------------------------- helpers
    def run_partition_code(
        self, partition: PartitionRuntime, api: str, fn: Callable[[], Any]
    ) -> Any:
        """Run partition code; a Python exception in it is that partition's panic."""
        try:
            return fn()
        except Exception as exc:  # halts and kernel bugs are BaseExceptions: they pass
            self.crash(partition, api, exc)
        except WatchdogExpired as expired:
            self.expired(expired)

    def expired(self, exc: WatchdogExpired) -> NoReturn:
        """The watchdog fired: halt, naming the partition that was running and where."""
        culprit = self.watchdog_took() if self.watchdog_took is not None else self.current.name
        own, text = partition_traceback(exc)
        where = f" at {own[-1].filename}:{own[-1].lineno} in {own[-1].name}" if own else ""
        text = text.rstrip("\n").rpartition("\n")[0] + "\nstopped here by the watchdog\n"
        self.halt(
            PanicRecord(
                culprit,
                "watchdog",
                f"ran for more than {self.watchdog_seconds:g} s without the SPE going idle "
                f"or blocking{where}",
                text if own else None,
            )
        )

    def wfi(self) -> bool:
        return self._wfi()

    def interrupts_pending(self) -> bool:
        return bool(self.interrupts.pending)

    def interrupts_taking(self) -> bool:
        return self.interrupts.taking

    def take_interrupts(self, where: Preempted) -> None:
        self.interrupts.take(where)

    def outstanding_call(self, client: PartitionRuntime) -> Connection | None:
        """The connection on which ``client`` waits for a reply, if any."""
        for conn in self.pool.live.values():
            if conn.client is client and conn.status is ConnStatus.ACTIVE:
                return conn
        return None

    def waits_description(self) -> str:
        """Who waits for what: the text of a deadlock report."""
        parts = []
        for part in [*self.partitions, self.ns_agent]:
            if blocked(part):
                if awaiting_reply(part):
                    what = "the reply to its call"
                else:
                    what = f"signals {part.waiting:#x} in psa_wait"
                parts.append(f"{part.name} waits for {what}")
        return "; ".join(parts) or "no thread is runnable"
