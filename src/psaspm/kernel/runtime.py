"""Runtime state of one boot: partitions, services, interrupt sources, connections.

Signal invariants for a partition ``p``:
- ``p.asserted & ~p.allowed == ASYNC_MSG_REPLY or 0``: only allowed signals,
  plus the reply bit the SPM uses to hand a client its reply.
- A service signal is asserted iff its queue holds at least one message.
- Under the IPC backend, ``p``'s thread is blocked iff
  ``p.waiting and not (p.waiting & p.asserted)`` (:func:`blocked`).

Connection invariants:
- A connection is in the pool's ``live`` map iff it is allocated; a free
  connection has ``status is ConnStatus.FREE`` and no service.
- ``ACTIVE`` means a message on the connection awaits the service's reply;
  only one can be outstanding per connection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from psaspm.consts import ASYNC_MSG_REPLY
from psaspm.errors import InternalError
from psaspm.kernel.memory import Ptr, Subject
from psaspm.kernel.objects import Buffer, ConnStatus, PsaMsg, RepliedCall
from psaspm.manifest.model import Handling, Irq, Model, Partition, Service, VersionPolicy

Sfn = Callable[[Any], int]


def allowed_signals(part: PartitionRuntime) -> int:
    """The signals of a partition's services and interrupts."""
    signals = 0
    for svc in part.services:
        signals |= svc.signal
    for irq in part.irqs:
        signals |= irq.signal
    return signals


class ServiceRuntime:
    __slots__ = (
        "connection_based",
        "manifest",
        "mm_iovec",
        "name",
        "ns_ok",
        "partition",
        "queue",
        "sfn",
        "sfn_name",
        "sid",
        "signal",
        "strict",
        "version",
    )

    def __init__(self, manifest: Service, partition: PartitionRuntime) -> None:
        self.manifest = manifest
        self.name = manifest.name
        self.sid = manifest.sid
        self.partition = partition
        self.signal = manifest.signal
        self.version = manifest.version
        self.strict = manifest.version_policy is VersionPolicy.STRICT
        self.ns_ok = manifest.non_secure_clients
        self.connection_based = manifest.connection_based
        self.mm_iovec = manifest.mm_iovec
        self.sfn: Sfn | None = None  # SFN model: the service function
        self.sfn_name = manifest.sfn_function
        self.queue: deque[Connection] = deque()  # messages awaiting psa_get, oldest first

    def version_ok(self, version: int) -> bool:
        """TF-M's version check: STRICT needs equality, RELAXED at most the service's."""
        if self.strict:
            return version == self.version
        return version <= self.version

    def __repr__(self) -> str:
        return f"<service {self.name} sid={self.sid:#x}>"


class IrqRuntime:
    __slots__ = (
        "enabled",
        "flih",
        "flih_name",
        "handling",
        "line",
        "manifest",
        "partition",
        "signal",
        "source",
    )

    def __init__(self, manifest: Irq, partition: PartitionRuntime) -> None:
        self.manifest = manifest
        self.partition = partition
        self.source = manifest.source
        self.signal = manifest.signal
        self.handling = manifest.handling
        self.flih: Callable[[], int] | None = None
        self.flih_name = manifest.flih_function  # for panic records
        # FF-M 1.1 partitions enable their sources themselves; 1.0 ones start enabled.
        owner = partition.manifest
        self.enabled = owner is not None and owner.psa_framework_version == "1.0"
        self.line = False  # the level of the interrupt line

    @property
    def is_flih(self) -> bool:
        return self.handling is Handling.FLIH


class PartitionRuntime:
    """A partition as the SPM sees it at run time (also the built-in NS agent)."""

    __slots__ = (
        "allowed",
        "asserted",
        "boundary",
        "code",
        "current_request",
        "deps",
        "entry",
        "entry_name",
        "init",
        "inited",
        "irqs",
        "irqs_by_signal",
        "is_ns_agent",
        "manifest",
        "name",
        "ns_client_id",
        "pid",
        "priority",
        "replied",
        "replied_value",
        "service_by_signal",
        "service_signals",
        "services",
        "spins",
        "subject",
        "thread",
        "waiting",
    )

    def __init__(self, manifest: Partition | None, name: str, pid: int, priority: int) -> None:
        self.manifest = manifest  # None for the built-in TrustZone NS agent
        self.name = name
        self.pid = pid
        self.priority = priority  # thread priority: TF-M 2.3's load_order
        self.is_ns_agent = manifest.ns_agent if manifest is not None else True
        self.ns_client_id = -1  # the NS client on whose behalf an NS agent calls now
        self.services: list[ServiceRuntime] = []
        self.service_by_signal: dict[int, ServiceRuntime] = {}
        self.service_signals = 0  # the signals of its services (set with the services)
        self.spins = 0  # psa_wait calls in a row that returned a message psa_get never took
        self.irqs: list[IrqRuntime] = []
        self.irqs_by_signal: dict[int, IrqRuntime] = {}
        self.deps: frozenset[int] = frozenset()  # SIDs this partition may call
        self.allowed = 0
        self.asserted = 0
        self.waiting = 0
        self.replied_value = 0  # the reply a blocked client collects
        # A mailbox NS agent's replies awaiting psa_get(ASYNC_MSG_REPLY), oldest first
        # (TF-M's p_replied); None for every other partition.
        self.replied: deque[RepliedCall] | None = None
        self.current_request: Connection | None = None  # SFN backend: the message being served
        self.inited = False
        self.entry: Callable[[], object] | None = None  # IPC thread body
        # The function behind it, for panic records: the IPC entry point's name (set
        # with the code); "entry" for an SFN partition's common thread.
        self.entry_name = "entry"
        self.init: Callable[[], object] | None = None  # SFN entry_init
        self.code: object = None
        self.thread: Any = None  # the IPC backend's thread object
        self.boundary = 0
        # Who this partition is to the memory checks (the NS agent acts for the NS side).
        self.subject = Subject(name, self.is_ns_agent, True, 0)

    @property
    def model(self) -> Model:
        return self.manifest.model if self.manifest is not None else Model.IPC

    @property
    def client_id(self) -> int:
        """The ID a call from this partition carries: its PID, or the NS client's ID."""
        return self.ns_client_id if self.is_ns_agent else self.pid

    def __repr__(self) -> str:
        return f"<partition {self.name} pid={self.pid}>"


def blocked(part: PartitionRuntime) -> bool:
    """The derived thread state (IPC backend): waiting for signals none of which is asserted."""
    return bool(part.waiting) and not part.waiting & part.asserted


def awaiting_reply(part: PartitionRuntime) -> bool:
    """Waiting for the reply to its own call (a client's ASYNC_MSG_REPLY wait, which its
    code does not wait for with psa_wait)."""
    return part.waiting == ASYNC_MSG_REPLY and not part.allowed & ASYNC_MSG_REPLY


_ZEROS = (0, 0, 0, 0)


def _sizes(vecs: tuple[Buffer, ...]) -> tuple[int, int, int, int]:
    """``psa_msg_t``'s four sizes for two or more vectors (one is built inline)."""
    s = [len(v) for v in vecs] + [0, 0, 0]
    return (s[0], s[1], s[2], s[3])


class Connection:
    """One pool slot: a connection, or the temporary one of a stateless call."""

    __slots__ = (
        "asynchronous",
        "client",
        "client_data",
        "client_id",
        "handle",
        "in_pos",
        "in_size",
        "index",
        "invecs",
        "mapped",
        "mm",
        "out_ptrs",
        "out_size",
        "out_written",
        "outvecs",
        "received",
        "rhandle",
        "service",
        "stateless",
        "status",
        "terminated",
        "type",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.handle = 0
        self.status = ConnStatus.FREE
        self.service: ServiceRuntime | None = None
        self.client: PartitionRuntime | None = None
        self.client_id = 0
        self.stateless = False
        self.type = 0
        self.rhandle: Any = None
        self.invecs: tuple[Buffer, ...] = ()
        self.in_size: tuple[int, int, int, int] = _ZEROS
        self.in_pos: list[int] = []
        self.outvecs: tuple[bytearray, ...] = ()
        self.out_size: tuple[int, int, int, int] = _ZEROS
        self.out_written: list[int] = []
        self.received = False  # the service has taken the message with psa_get
        self.mm = 0  # MM-IOVEC state nibbles
        self.mapped: list[memoryview] = []  # views handed out by psa_map_*vec
        self.out_ptrs: tuple[Ptr | None, ...] | None = (
            None  # Ptr out-vectors, whose len the reply sets
        )
        self.client_data: Any = None  # a mailbox agent's token for the call (TF-M client_data)
        # A mailbox agent's call: it does not block; the reply comes as ASYNC_MSG_REPLY.
        self.asynchronous = False
        # The DISCONNECT the SPM sends after a PROGRAMMER_ERROR reply ended the connection.
        self.terminated = False

    def msg(self) -> PsaMsg:
        return PsaMsg(
            self.type, self.handle, self.client_id, self.rhandle, self.in_size, self.out_size
        )

    def set_message(
        self, type: int, invecs: tuple[Buffer, ...], outvecs: tuple[bytearray, ...]
    ) -> None:
        """Fill the message fields for a request (vectors already validated)."""
        self.type = type
        self.invecs = invecs
        self.outvecs = outvecs
        n_in = len(invecs)
        n_out = len(outvecs)
        # One vector each way is the common case: build its tuple without a loop.
        if n_in == 1:
            self.in_size = (len(invecs[0]), 0, 0, 0)
            self.in_pos = [0]
        elif n_in:
            self.in_size = _sizes(invecs)
            self.in_pos = [0] * n_in
        else:
            self.in_size = _ZEROS
            self.in_pos = []
        if n_out == 1:
            self.out_size = (len(outvecs[0]), 0, 0, 0)
            self.out_written = [0]
        elif n_out:
            self.out_size = _sizes(outvecs)
            self.out_written = [0] * n_out
        else:
            self.out_size = _ZEROS
            self.out_written = []
        self.received = False
        self.mm = 0
        self.out_ptrs = None

    def release_views(self) -> None:
        for view in self.mapped:
            view.release()
        self.mapped.clear()


class ConnectionPool:
    """TF-M's fixed-size connection pool (``CONFIG_TFM_CONN_HANDLE_MAX_NUM``).

    Handles follow TF-M's scheme ``(slot << 3) + 1 + loop`` with a loop
    counter cycling 1..7, 0, so handles stay below bit 30 and never collide
    with stateless handles.  psaspm is stricter than TF-M: a handle must match
    the slot's current handle exactly, so a stale handle to a reused slot is
    rejected instead of aliasing the new connection.
    """

    __slots__ = ("_free", "_loop", "capacity", "live", "slots")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("the connection pool needs at least one slot")
        self.capacity = capacity
        self.slots = [Connection(i) for i in range(capacity)]
        self._free = list(reversed(self.slots))
        self._loop = 0
        self.live: dict[int, Connection] = {}

    def allocate(
        self, service: ServiceRuntime, client: PartitionRuntime, client_id: int
    ) -> Connection | None:
        free = self._free
        if not free:
            return None
        conn = free.pop()
        self._loop = (self._loop + 1) & 7
        handle = (conn.index << 3) + 1 + self._loop
        conn.handle = handle
        conn.status = ConnStatus.IDLE
        conn.service = service
        conn.client = client
        conn.client_id = client_id
        conn.stateless = False
        conn.asynchronous = False
        conn.terminated = False
        conn.rhandle = None
        self.live[handle] = conn
        return conn

    def lookup(self, handle: int) -> Connection | None:
        return self.live.get(handle)

    def free(self, conn: Connection) -> None:
        if conn.status is ConnStatus.FREE:
            raise InternalError(f"connection slot {conn.index} freed twice")
        del self.live[conn.handle]
        if conn.mapped:
            conn.release_views()
        conn.status = ConnStatus.FREE
        conn.service = None
        conn.client = None
        conn.invecs = ()
        conn.outvecs = ()
        conn.rhandle = None
        self._free.append(conn)

    @property
    def in_use(self) -> int:
        return len(self.live)
