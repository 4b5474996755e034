"""The kernel's contracts: what backends offer the SPM, and the narrow port they use.

The SPM frontend (``spm.Spm``) calls a backend only through :class:`Backend`:
TF-M's six operations (``secure_fw/spm/include/ffm/backend.h``, v1.6) plus
what the SPM, the interfaces and the system really need (``retire`` for the
DISCONNECT of a terminated connection, ``enter_ns``, ``preempt``,
``shutdown``).  Backends and the interrupt handler reach the
kernel only through :class:`SpmPort`, never by importing ``Spm``.  The IPC
interfaces also schedule (PendSV) through :class:`Scheduling`.

Also here: the values that cross these seams (``NEED_SCHEDULE``, the SPM
entry state, rejections with their reason, and the two ways secure code
unwinds: a halt and a kernel bug).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from psaspm.errors import PanicRecord

if TYPE_CHECKING:
    from psaspm.kernel.instruments import Counters, Tracer
    from psaspm.kernel.runtime import Connection, PartitionRuntime

NEED_SCHEDULE = -254  # TF-M's STATUS_NEED_SCHEDULE: the caller blocks; its result comes later


class Inside(enum.IntEnum):
    """How the SPM was entered while it runs a PSA API (``Spm.inside``).

    Invariant: ``NONE`` whenever partition or NS code runs; ``CROSS`` or ``SVC``
    only while an IPC interface entry runs the SPM function.  ``NONE`` is 0, so
    ``if spm.inside`` reads "inside the SPM".
    """

    NONE = 0
    CROSS = 1  # a cross call (level 1): scheduler locked, preemptable by interrupts
    SVC = 2  # an SVC (levels 2, 3): handler mode, not preemptable


class Preempted(enum.StrEnum):
    """What an interrupt preempted, as the trace reports it."""

    SPM = "spm"  # SPM code under a cross call
    SVC_EXIT = "svc-exit"  # held off until an SVC returned
    THREAD = "thread"  # partition or NS code


class Rejected(int):
    """A status the SPM returns for a call it rejected, carrying why.

    An ``int`` (it compares and returns as the status); ``reason`` is the text
    of a secure caller's panic, of ``ns.last_error`` and of the trace.
    """

    reason: str  # (an int subclass cannot have slots: the instance has a __dict__)

    def __new__(cls, status: int, reason: str) -> Rejected:
        self = super().__new__(cls, status)
        self.reason = reason
        return self


class SpeHalt(BaseException):
    """Unwinds secure code after a panic; becomes :class:`psaspm.Panic` at the NS boundary.

    A ``BaseException`` so that partition code's ``except Exception`` cannot
    swallow the halt.
    """

    def __init__(self, record: PanicRecord) -> None:
        super().__init__(str(record))
        self.record = record


class KernelBug(BaseException):
    """An exception raised by SPM code itself: psaspm is broken, not the partition.

    Raised by the interface entries around SPM code; a ``BaseException`` so
    that it passes through partition code and the partition-code guards
    unchanged.  ``error`` is the original exception, with its traceback.
    """

    def __init__(self, api: str, error: Exception) -> None:
        super().__init__(f"internal error in the SPM during {api}: {type(error).__name__}: {error}")
        self.api = api
        self.error = error


class WatchdogExpired(BaseException):
    """Raised into the SPE's thread by the watchdog (``load(watchdog=SECONDS)``) when
    partition code ran too long without the SPE going idle or blocking.  A
    ``BaseException``: partition code's ``except Exception`` cannot swallow it."""


class Backend(Protocol):
    """What the SPM frontend, the interfaces and the system call on a backend."""

    def comp_init_assuredly(self, part: PartitionRuntime) -> None:
        """Prepare one partition's runtime (signals, thread); a failure is fatal."""

    def system_run(self) -> None:
        """Start the system: initialise partitions and run until the SPE is idle."""

    def messaging(self, conn: Connection) -> int:
        """Deliver a client's message to the service; the status, or NEED_SCHEDULE."""

    def replying(self, conn: Connection, value: int) -> int:
        """Deliver the service's reply ``value`` to the client."""

    def retire(self, conn: Connection) -> None:
        """The service replied to a message nobody waits for (the DISCONNECT the SPM sent
        for a terminated connection): undo what messaging set up, deliver nothing."""

    def wait(self, part: PartitionRuntime, mask: int) -> int:
        """Signals of ``mask`` asserted on ``part``, or NEED_SCHEDULE to block for one."""

    def wake_up(self, part: PartitionRuntime, signal: int) -> None:
        """Assert ``signal`` on ``part``, making it runnable if it waits for it."""

    def enter_ns(self) -> None:
        """The non-secure side is about to call into the SPE from the running greenlet."""

    def preempt(self) -> None:
        """A preemption point outside the SPM: run threads an interrupt made more urgent."""

    def shutdown(self) -> None:
        """End this boot's threads now (before a reset), with no system behind the door."""


class Scheduling(Protocol):
    """PendSV, as the IPC interfaces use it on leaving the SPM."""

    attempted: bool  # a thread more urgent than the running one became runnable

    def schedule(self, result: int) -> int:
        """Run the most urgent runnable thread; ``result`` (or the wake value) once back."""


class SpmPort(Protocol):
    """The kernel as backends and the interrupt handler see it."""

    current: PartitionRuntime  # the running partition (or NS agent)
    backend: Backend
    ns_agent: PartitionRuntime
    counters: Counters | None
    tracer: Tracer | None
    inside: Inside
    handler_mode: bool  # a FLIH runs: partition code in handler mode

    @property
    def partitions(self) -> Sequence[PartitionRuntime]: ...

    def halt(self, record: PanicRecord) -> NoReturn: ...
    def fault(
        self, api: str, reason: str, partition: PartitionRuntime | None = None
    ) -> NoReturn: ...
    def crash(self, partition: PartitionRuntime, api: str, exc: Exception) -> NoReturn: ...
    def run_partition_code(
        self, partition: PartitionRuntime, api: str, fn: Callable[[], Any]
    ) -> Any: ...
    def interrupts_pending(self) -> bool: ...
    def interrupts_taking(self) -> bool: ...
    def take_interrupts(self, where: Preempted) -> None: ...
    def outstanding_call(self, client: PartitionRuntime) -> Connection | None: ...
    def waits_description(self) -> str: ...
    def wfi(self) -> bool:
        """Wait for an interrupt (TF-M's idle thread): advance platform time to the next
        event of an armed device model and take its interrupt; False if none can fire."""
