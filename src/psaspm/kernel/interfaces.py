"""The three interfaces by which partition code enters the SPM.

- ``SfnInterface`` (SFN backend): a direct function call.  After a client
  call, if the current component changed the service ran, and the interface
  replies on its behalf with the service function's return value.
- ``CrossCallInterface`` (IPC backend, isolation level 1): no privilege
  change; the SPM runs on the SPM stack with the scheduler locked and stays
  preemptable: interrupts are taken at once, but threads they wake run only
  when the SPM is left.
- ``SvcInterface`` (IPC backend, levels 2 and 3): a numbered trap into
  handler mode, privileged and not preemptable: interrupts wait until the
  SVC returns.  Unknown numbers fail cleanly with PSA_ERROR_GENERIC_ERROR.

Every interface applies TF-M's programmer-error rule to client calls the SPM
itself rejected: a status for a non-secure caller, a panic for a secure one.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, cast

from psaspm.consts import PSA_ERROR_GENERIC_ERROR
from psaspm.kernel.backends import IpcBackend
from psaspm.kernel.objects import Buffer, InVec, OutVec, PsaMsg
from psaspm.kernel.spm import NEED_SCHEDULE, Spm

if TYPE_CHECKING:
    from psaspm.kernel.instruments import Tracer
    from psaspm.kernel.partition import PartitionRuntime


class Svc(enum.IntEnum):
    """psaspm's SVC numbers for the PSA API (the numbered dispatch table)."""

    FRAMEWORK_VERSION = 0x00
    VERSION = 0x01
    CONNECT = 0x02
    CALL = 0x03
    CLOSE = 0x04
    WAIT = 0x05
    GET = 0x06
    SET_RHANDLE = 0x07
    READ = 0x08
    SKIP = 0x09
    WRITE = 0x0A
    REPLY = 0x0B
    NOTIFY = 0x0C
    CLEAR = 0x0D
    EOI = 0x0E
    PANIC = 0x0F
    LIFECYCLE = 0x10
    IRQ_ENABLE = 0x11
    IRQ_DISABLE = 0x12
    RESET_SIGNAL = 0x13
    MAP_INVEC = 0x14
    UNMAP_INVEC = 0x15
    MAP_OUTVEC = 0x16
    UNMAP_OUTVEC = 0x17
    AGENT_CALL = 0x18  # mailbox NS agent API (TF-M HEAD mailbox_agent_api.c)
    AGENT_CONNECT = 0x19
    AGENT_CLOSE = 0x1A


API_NAMES = {
    Svc.FRAMEWORK_VERSION: "psa_framework_version",
    Svc.VERSION: "psa_version",
    Svc.CONNECT: "psa_connect",
    Svc.CALL: "psa_call",
    Svc.CLOSE: "psa_close",
    Svc.WAIT: "psa_wait",
    Svc.GET: "psa_get",
    Svc.SET_RHANDLE: "psa_set_rhandle",
    Svc.READ: "psa_read",
    Svc.SKIP: "psa_skip",
    Svc.WRITE: "psa_write",
    Svc.REPLY: "psa_reply",
    Svc.NOTIFY: "psa_notify",
    Svc.CLEAR: "psa_clear",
    Svc.EOI: "psa_eoi",
    Svc.PANIC: "psa_panic",
    Svc.LIFECYCLE: "psa_rot_lifecycle_state",
    Svc.IRQ_ENABLE: "psa_irq_enable",
    Svc.IRQ_DISABLE: "psa_irq_disable",
    Svc.RESET_SIGNAL: "psa_reset_signal",
    Svc.MAP_INVEC: "psa_map_invec",
    Svc.UNMAP_INVEC: "psa_unmap_invec",
    Svc.MAP_OUTVEC: "psa_map_outvec",
    Svc.UNMAP_OUTVEC: "psa_unmap_outvec",
    Svc.AGENT_CALL: "agent_psa_call",
    Svc.AGENT_CONNECT: "agent_psa_connect",
    Svc.AGENT_CLOSE: "agent_psa_close",
}
CLIENT_CALLS = (
    Svc.CONNECT,
    Svc.CALL,
    Svc.CLOSE,
    Svc.AGENT_CALL,
    Svc.AGENT_CONNECT,
    Svc.AGENT_CLOSE,
)
# APIs that can neither block, nor wake a thread, nor change an interrupt source:
# leaving the SPM after them has nothing to take or schedule.
QUIET_CALLS = (
    Svc.FRAMEWORK_VERSION,
    Svc.VERSION,
    Svc.GET,
    Svc.SET_RHANDLE,
    Svc.READ,
    Svc.SKIP,
    Svc.WRITE,
    Svc.CLEAR,
    Svc.LIFECYCLE,
    Svc.MAP_INVEC,
    Svc.UNMAP_INVEC,
    Svc.MAP_OUTVEC,
    Svc.UNMAP_OUTVEC,
)


def api_table(spm: Spm) -> list[Callable[..., Any]]:
    """The SPM function behind each SVC number."""
    by_number: dict[Svc, Callable[..., Any]] = {
        Svc.FRAMEWORK_VERSION: spm.client_framework_version,
        Svc.VERSION: spm.client_version,
        Svc.CONNECT: spm.client_connect,
        Svc.CALL: spm.client_call,
        Svc.CLOSE: spm.client_close,
        Svc.WAIT: spm.partition_wait,
        Svc.GET: spm.partition_get,
        Svc.SET_RHANDLE: spm.partition_set_rhandle,
        Svc.READ: spm.partition_read,
        Svc.SKIP: spm.partition_skip,
        Svc.WRITE: spm.partition_write,
        Svc.REPLY: spm.partition_reply,
        Svc.NOTIFY: spm.partition_notify,
        Svc.CLEAR: spm.partition_clear,
        Svc.EOI: spm.partition_eoi,
        Svc.PANIC: spm.partition_panic,
        Svc.LIFECYCLE: spm.partition_lifecycle,
        Svc.IRQ_ENABLE: spm.partition_irq_enable,
        Svc.IRQ_DISABLE: spm.partition_irq_disable,
        Svc.RESET_SIGNAL: spm.partition_reset_signal,
        Svc.MAP_INVEC: spm.partition_map_invec,
        Svc.UNMAP_INVEC: spm.partition_unmap_invec,
        Svc.MAP_OUTVEC: spm.partition_map_outvec,
        Svc.UNMAP_OUTVEC: spm.partition_unmap_outvec,
        Svc.AGENT_CALL: spm.agent_call,
        Svc.AGENT_CONNECT: spm.agent_connect,
        Svc.AGENT_CLOSE: spm.agent_close,
    }
    return [by_number[number] for number in Svc]


class Interface(Protocol):
    """The PSA API as partition code (and the NS agent) enters the SPM."""

    name: str

    def psa_framework_version(self) -> int: ...
    def psa_version(self, sid: int) -> int: ...
    def psa_connect(self, sid: int, version: int) -> int: ...
    def psa_call(
        self, handle: int, type: int, in_vecs: Sequence[InVec], out_vecs: Sequence[OutVec]
    ) -> int: ...
    def psa_close(self, handle: int) -> None: ...
    def psa_wait(self, signal_mask: int, timeout: int) -> int: ...
    def psa_get(self, signal: int) -> PsaMsg: ...
    def psa_read(self, msg_handle: int, invec_idx: int, num_bytes: int) -> bytes: ...
    def psa_skip(self, msg_handle: int, invec_idx: int, num_bytes: int) -> int: ...
    def psa_write(self, msg_handle: int, outvec_idx: int, data: Buffer) -> None: ...
    def psa_reply(self, msg_handle: int, status: int) -> None: ...
    def psa_set_rhandle(self, msg_handle: int, rhandle: Any) -> None: ...
    def psa_notify(self, partition_id: int) -> None: ...
    def psa_clear(self) -> None: ...
    def psa_panic(self) -> NoReturn: ...
    def psa_rot_lifecycle_state(self) -> int: ...
    def psa_irq_enable(self, irq_signal: int) -> None: ...
    def psa_irq_disable(self, irq_signal: int) -> int: ...
    def psa_eoi(self, irq_signal: int) -> None: ...
    def psa_reset_signal(self, irq_signal: int) -> None: ...
    def psa_map_invec(self, msg_handle: int, invec_idx: int) -> memoryview: ...
    def psa_unmap_invec(self, msg_handle: int, invec_idx: int) -> None: ...
    def psa_map_outvec(self, msg_handle: int, outvec_idx: int) -> memoryview: ...
    def psa_unmap_outvec(self, msg_handle: int, outvec_idx: int, length: int) -> None: ...
    def agent_psa_call(
        self,
        handle: int,
        type: int,
        in_vecs: Sequence[InVec],
        out_vecs: Sequence[OutVec],
        client_id: int,
        client_data: Any,
    ) -> int: ...
    def agent_psa_connect(
        self, sid: int, version: int, client_id: int, client_data: Any
    ) -> int: ...
    def agent_psa_close(self, handle: int, client_id: int, client_data: Any) -> int: ...


class _TableInterface:
    """The PSA API methods, each entering the SPM through ``_enter`` with its number."""

    name = "abstract"

    def __init__(self, spm: Spm) -> None:
        self.spm = spm
        self.table = api_table(spm)

    def _enter(self, number: int, *args: Any) -> Any:
        raise NotImplementedError

    def _client(self, number: int, *args: Any) -> int:
        spm = self.spm
        caller = spm.current
        result: int = self._enter(number, *args)
        if result < 0 and result != NEED_SCHEDULE:
            result = spm.programmer_error(caller, API_NAMES[Svc(number)], result)
        return self._leave(result)  # type: ignore[no-any-return]

    def _leave(self, result: Any) -> Any:
        return result

    def _thread_mode(self, number: int) -> None:
        if self.spm.handler_mode:
            self.spm.fault(API_NAMES[Svc(number)], "PSA API called from a FLIH (handler mode)")

    def psa_framework_version(self) -> int:
        return self._leave(self._enter(Svc.FRAMEWORK_VERSION))  # type: ignore[no-any-return]

    def psa_version(self, sid: int) -> int:
        return self._leave(self._enter(Svc.VERSION, sid))  # type: ignore[no-any-return]

    def psa_connect(self, sid: int, version: int) -> int:
        return self._client(Svc.CONNECT, sid, version)

    def psa_call(
        self,
        handle: int,
        type: int,
        in_vecs: Sequence[InVec] = (),
        out_vecs: Sequence[OutVec] = (),
    ) -> int:
        return self._client(Svc.CALL, handle, type, in_vecs, out_vecs)

    def psa_close(self, handle: int) -> None:
        self._client(Svc.CLOSE, handle)

    def psa_wait(self, signal_mask: int, timeout: int) -> int:
        return self._leave(self._enter(Svc.WAIT, signal_mask, timeout))  # type: ignore[no-any-return]

    def psa_get(self, signal: int) -> PsaMsg:
        return self._leave(self._enter(Svc.GET, signal))  # type: ignore[no-any-return]

    def psa_read(self, msg_handle: int, invec_idx: int, num_bytes: int) -> bytes:
        return self._leave(self._enter(Svc.READ, msg_handle, invec_idx, num_bytes))  # type: ignore[no-any-return]

    def psa_skip(self, msg_handle: int, invec_idx: int, num_bytes: int) -> int:
        return self._leave(self._enter(Svc.SKIP, msg_handle, invec_idx, num_bytes))  # type: ignore[no-any-return]

    def psa_write(self, msg_handle: int, outvec_idx: int, data: Buffer) -> None:
        self._leave(self._enter(Svc.WRITE, msg_handle, outvec_idx, data))

    def psa_reply(self, msg_handle: int, status: int) -> None:
        self._leave(self._enter(Svc.REPLY, msg_handle, status))

    def psa_set_rhandle(self, msg_handle: int, rhandle: Any) -> None:
        self._leave(self._enter(Svc.SET_RHANDLE, msg_handle, rhandle))

    def psa_notify(self, partition_id: int) -> None:
        self._leave(self._enter(Svc.NOTIFY, partition_id))

    def psa_clear(self) -> None:
        self._leave(self._enter(Svc.CLEAR))

    def psa_panic(self) -> NoReturn:
        self._enter(Svc.PANIC)
        raise AssertionError("psa_panic returned")  # pragma: no cover - the SPM halted

    def psa_rot_lifecycle_state(self) -> int:
        return self._leave(self._enter(Svc.LIFECYCLE))  # type: ignore[no-any-return]

    def psa_irq_enable(self, irq_signal: int) -> None:
        self._leave(self._enter(Svc.IRQ_ENABLE, irq_signal))

    def psa_irq_disable(self, irq_signal: int) -> int:
        return self._leave(self._enter(Svc.IRQ_DISABLE, irq_signal))  # type: ignore[no-any-return]

    def psa_eoi(self, irq_signal: int) -> None:
        self._leave(self._enter(Svc.EOI, irq_signal))

    def psa_reset_signal(self, irq_signal: int) -> None:
        self._leave(self._enter(Svc.RESET_SIGNAL, irq_signal))

    def psa_map_invec(self, msg_handle: int, invec_idx: int) -> memoryview:
        return self._leave(self._enter(Svc.MAP_INVEC, msg_handle, invec_idx))  # type: ignore[no-any-return]

    def psa_unmap_invec(self, msg_handle: int, invec_idx: int) -> None:
        self._leave(self._enter(Svc.UNMAP_INVEC, msg_handle, invec_idx))

    def psa_map_outvec(self, msg_handle: int, outvec_idx: int) -> memoryview:
        return self._leave(self._enter(Svc.MAP_OUTVEC, msg_handle, outvec_idx))  # type: ignore[no-any-return]

    def psa_unmap_outvec(self, msg_handle: int, outvec_idx: int, length: int) -> None:
        self._leave(self._enter(Svc.UNMAP_OUTVEC, msg_handle, outvec_idx, length))

    def agent_psa_call(
        self,
        handle: int,
        type: int,
        in_vecs: Sequence[InVec],
        out_vecs: Sequence[OutVec],
        client_id: int,
        client_data: Any,
    ) -> int:
        return self._client(Svc.AGENT_CALL, handle, type, in_vecs, out_vecs, client_id, client_data)

    def agent_psa_connect(self, sid: int, version: int, client_id: int, client_data: Any) -> int:
        return self._client(Svc.AGENT_CONNECT, sid, version, client_id, client_data)

    def agent_psa_close(self, handle: int, client_id: int, client_data: Any) -> int:
        return self._client(Svc.AGENT_CLOSE, handle, client_id, client_data)


class SfnInterface(_TableInterface):
    """Direct calls (SFN backend): the service function runs inside ``psa_call``."""

    name = "sfn"

    def _enter(self, number: int, *args: Any) -> Any:
        self._thread_mode(number)
        return self.table[number](*args)

    def _client(self, number: int, *args: Any) -> int:
        client = self.spm.current
        self._thread_mode(number)
        return self._returned(client, API_NAMES[Svc(number)], self.table[number](*args))

    def psa_call(
        self,
        handle: int,
        type: int,
        in_vecs: Sequence[InVec] = (),
        out_vecs: Sequence[OutVec] = (),
    ) -> int:
        # _client without the dispatch by number: every SFN-backend call comes this way.
        spm = self.spm
        client = spm.current
        if spm.handler_mode:
            self._thread_mode(Svc.CALL)
        return self._returned(client, "psa_call", spm.client_call(handle, type, in_vecs, out_vecs))

    def _returned(self, client: PartitionRuntime, api: str, result: int) -> int:
        """After a client call: if the service ran (the current component changed), reply
        on its behalf with what its function returned; else apply the programmer-error rule."""
        spm = self.spm
        target = spm.current
        if target is not client:
            conn = target.current_request  # the message the backend handed the service
            assert conn is not None
            return spm.reply(conn, result)
        if result < 0:
            result = spm.programmer_error(client, api, result)
        return result

    def psa_read(self, msg_handle: int, invec_idx: int, num_bytes: int) -> bytes:
        spm = self.spm
        if spm.handler_mode:
            self._thread_mode(Svc.READ)
        return spm.partition_read(msg_handle, invec_idx, num_bytes)

    def psa_write(self, msg_handle: int, outvec_idx: int, data: Buffer) -> None:
        spm = self.spm
        if spm.handler_mode:
            self._thread_mode(Svc.WRITE)
        spm.partition_write(msg_handle, outvec_idx, data)


class _IpcInterface(_TableInterface):
    """The IPC interfaces: every PSA API compiled into one entry at build time.

    Each entry binds its SPM function, API name and client-ness, so a call
    makes no dispatch by number, no ``*args`` re-packing and no method hops;
    the entries replace the class's methods on the instance.  An entry enters
    the SPM (``spm.inside`` = the interface's ``mode``), applies the
    programmer-error rule to client calls, takes interrupts held off while the
    SPM ran, and schedules (PendSV) if the caller blocked or a more urgent
    thread became runnable.
    """

    mode = ""  # what spm.inside says while this interface runs the SPM
    held_off = "thread"  # what interrupts pending at the SPM's exit preempt
    counts_svc = False  # each entry counts one SVC

    def __init__(self, spm: Spm, backend: IpcBackend) -> None:
        super().__init__(spm)
        self.backend = backend
        self.entries: list[Callable[..., Any]] = []  # by SVC number
        for number in Svc:
            entry = self._compile(
                self.table[number], API_NAMES[number], number in CLIENT_CALLS, number in QUIET_CALLS
            )
            self.entries.append(entry)
            if number == Svc.CLOSE:
                entry = _returning_none(entry)
            setattr(self, API_NAMES[number], entry)

    def _compile(
        self, fn: Callable[..., Any], api: str, client: bool, quiet: bool
    ) -> Callable[..., Any]:
        """The entry for one API: exactly ``fn``'s parameters (no ``*args`` packing), and
        only the steps this API and interface need (no per-call flag tests)."""
        params = ", ".join(inspect.signature(fn).parameters)
        body = (_QUIET_BODY if quiet else _FULL_BODY).format(
            params=params,
            caller="caller = spm.current" if client else "",
            programmer_error=_PROGRAMMER_ERROR if client else "",
        )
        source = _ENTRY.format(
            params=params, count_svc=_COUNT_SVC if self.counts_svc else "", body=body
        )
        namespace: dict[str, Any] = {
            "spm": self.spm,
            "backend": self.backend,
            "fn": fn,
            "api": api,
            "mode": self.mode,
            "held_off": self.held_off,
            "NEED_SCHEDULE": NEED_SCHEDULE,
        }
        exec(source, namespace)  # a fixed template with this API's own parameter names
        entry: Callable[..., Any] = namespace["entry"]
        return entry


# What an IPC entry does: refuse handler mode, count the SVC (SVC interface), then
# run the API: a quiet one alone; any other inside the SPM, then apply the
# programmer-error rule (client calls), take interrupts held off and schedule
# (PendSV) if needed.
_ENTRY = """
def entry({params}):
    if spm.handler_mode:
        spm.fault(api, "PSA API called from a FLIH (handler mode)")
    {count_svc}
{body}"""
_QUIET_BODY = """    return fn({params})
"""
_FULL_BODY = """    {caller}
    spm.inside = mode
    try:
        result = fn({params})
    finally:
        spm.inside = ""
    {programmer_error}
    if spm.pending:
        spm.take_interrupts(held_off)
    if result == NEED_SCHEDULE or backend.attempted:
        return backend.schedule(result)
    return result
"""
_COUNT_SVC = """counters = spm.counters
    if counters is not None:
        counters.svc_entries += 1"""
_PROGRAMMER_ERROR = """if result < 0 and result != NEED_SCHEDULE:
        result = spm.programmer_error(caller, api, result)"""


class CrossCallInterface(_IpcInterface):
    """Isolation level 1: a function call on the SPM stack, scheduler locked, preemptable."""

    name = "cross"
    mode = "cross"


class SvcInterface(_IpcInterface):
    """Isolation levels 2 and 3: a trap to handler mode, privileged, not preemptable.

    Partition code's PSA calls come through the compiled entries, whose SVC
    numbers are resolved at build time; :meth:`svc` is the handler for a raw
    SVC number.
    """

    name = "svc"
    mode = "svc"
    held_off = "svc-exit"
    counts_svc = True

    def svc(self, number: int, *args: Any) -> Any:
        """The SVC handler: dispatch by number; an unknown number fails cleanly."""
        if not isinstance(number, int) or not 0 <= number < len(self.entries):
            return PSA_ERROR_GENERIC_ERROR
        return self.entries[number](*args)


def _returning_none(entry: Callable[..., Any]) -> Callable[..., None]:
    def call(*args: Any) -> None:
        entry(*args)

    return call


def traced(inner: Interface, spm: Spm, tracer: Tracer) -> Interface:
    """Wrap an interface so that every PSA API call is reported to ``tracer``.

    Chosen once when a system is built with a tracer; without one the kernel
    runs the bare interface and pays nothing for tracing.
    """
    return cast(Interface, _TracingInterface(inner, spm, tracer))


class _TracingInterface:
    name = "traced"

    def __init__(self, inner: Interface, spm: Spm, tracer: Tracer) -> None:
        self.inner = inner
        self.spm = spm
        self.tracer = tracer
        self.name = inner.name
        for api in API_NAMES.values():
            setattr(self, api, self._wrap(api, getattr(inner, api)))

    def _wrap(self, api: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        spm = self.spm
        enter = self.tracer.api_enter  # bound once: no per-call method lookup
        exit_ = self.tracer.api_exit

        def call(*args: Any) -> Any:
            thread = spm.current.name
            enter(thread, api)
            result = fn(*args)
            exit_(thread, api, result)
            return result

        return call
