"""Runtime state of partitions and services.

Signal invariants for a partition ``p``:
- ``p.asserted & ~p.allowed == ASYNC_MSG_REPLY or 0``: only allowed signals,
  plus the reply bit the SPM uses to hand a client its reply.
- A service signal is asserted iff its queue holds at least one message.
- Under the IPC backend, ``p``'s thread is blocked iff
  ``p.waiting and not (p.waiting & p.asserted)``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from psaspm.kernel.memory import Subject
from psaspm.manifest.model import Handling, Irq, Model, Partition, Service, VersionPolicy

if TYPE_CHECKING:
    from psaspm.kernel.objects import Connection, RepliedCall

Sfn = Callable[[Any], int]


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
        self.queue: deque[Connection] = deque()  # messages awaiting psa_get, oldest first

    def version_ok(self, version: int) -> bool:
        """TF-M's version check: STRICT needs equality, RELAXED at most the service's."""
        if self.strict:
            return version == self.version
        return version <= self.version

    def __repr__(self) -> str:
        return f"<service {self.name} sid={self.sid:#x}>"


class IrqRuntime:
    __slots__ = ("enabled", "flih", "handling", "line", "manifest", "partition", "signal", "source")

    def __init__(self, manifest: Irq, partition: PartitionRuntime) -> None:
        self.manifest = manifest
        self.partition = partition
        self.source = manifest.source
        self.signal = manifest.signal
        self.handling = manifest.handling
        self.flih: Callable[[], int] | None = None
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
        "services",
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
