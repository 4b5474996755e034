"""Messages, connections and the bounded connection pool.

Invariants:
- A connection is in the pool's ``live`` map iff it is allocated; a free
  connection has ``status is ConnStatus.FREE`` and no service.
- ``ACTIVE`` means a message on the connection awaits the service's reply;
  only one can be outstanding per connection.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from psaspm.kernel.memory import Ptr

if TYPE_CHECKING:
    from psaspm.kernel.partition import PartitionRuntime, ServiceRuntime

Buffer = bytes | bytearray | memoryview
InVec = Buffer | Ptr  # a Python buffer, or a raw pointer into the modelled memory
OutVec = bytearray | Ptr
_ZEROS = (0, 0, 0, 0)
_PAD = (_ZEROS, (0, 0, 0), (0, 0), (0,), ())  # _PAD[n]: the zeros after n sizes


class PsaMsg:
    """``psa_msg_t``: what ``psa_get`` hands to a service (a copy, as in C)."""

    __slots__ = ("client_id", "handle", "in_size", "out_size", "rhandle", "type")

    def __init__(
        self,
        type: int,
        handle: int,
        client_id: int,
        rhandle: Any,
        in_size: tuple[int, int, int, int],
        out_size: tuple[int, int, int, int],
    ) -> None:
        self.type = type
        self.handle = handle
        self.client_id = client_id
        self.rhandle = rhandle
        self.in_size = in_size
        self.out_size = out_size

    def __repr__(self) -> str:
        return (
            f"psa_msg_t(type={self.type}, handle={self.handle:#x}, client_id={self.client_id}, "
            f"rhandle={self.rhandle!r}, in_size={self.in_size}, out_size={self.out_size})"
        )


class RepliedCall:
    """A reply owed to a mailbox NS agent: what ``psa_get(ASYNC_MSG_REPLY)`` hands it
    in ``msg.rhandle`` (TF-M hands the connection; its ``client_data`` and
    ``replied_value`` are what the agent reads)."""

    __slots__ = ("client_data", "client_id", "handle", "replied_value", "type")

    def __init__(
        self, handle: int, type: int, client_id: int, client_data: Any, replied_value: int
    ) -> None:
        self.handle = handle
        self.type = type
        self.client_id = client_id
        self.client_data = client_data
        self.replied_value = replied_value

    def __repr__(self) -> str:
        return (
            f"RepliedCall(handle={self.handle:#x}, type={self.type}, client_id={self.client_id}, "
            f"client_data={self.client_data!r}, replied_value={self.replied_value})"
        )


class ConnStatus(enum.Enum):
    FREE = 0  # in the pool's free list
    IDLE = 1  # allocated; no request outstanding
    ACTIVE = 2  # a message awaits the service's reply


# Per-vector MM-IOVEC state bits (TF-M keeps a nibble per vector: invecs 0-3, outvecs 4-7).
MM_MAPPED = 1
MM_UNMAPPED = 2
MM_ACCESSED = 4


class Connection:
    """One pool slot: a connection, or the temporary one of a stateless call."""

    __slots__ = (
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
        self.out_ptrs: tuple[Any, ...] | None = None  # Ptr out-vectors, whose len the reply sets
        self.client_data: Any = None  # a mailbox agent's token for the call (TF-M client_data)

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
            self.in_size = tuple(map(len, invecs)) + _PAD[n_in]  # type: ignore[assignment]
            self.in_pos = [0] * n_in
        else:
            self.in_size = _ZEROS
            self.in_pos = []
        if n_out == 1:
            self.out_size = (len(outvecs[0]), 0, 0, 0)
            self.out_written = [0]
        elif n_out:
            self.out_size = tuple(map(len, outvecs)) + _PAD[n_out]  # type: ignore[assignment]
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
        conn.rhandle = None
        self.live[handle] = conn
        return conn

    def lookup(self, handle: int) -> Connection | None:
        return self.live.get(handle)

    def free(self, conn: Connection) -> None:
        if conn.status is ConnStatus.FREE:
            from psaspm.errors import InternalError

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
