"""Chrome trace-event JSON: a run as Perfetto and chrome://tracing show it.

:class:`ChromeTrace` implements the kernel's ``Tracer`` protocol::

    trace = ChromeTrace()
    system = psaspm.load(sources, tracer=trace)
    trace.attach(system)          # optional: names, track order, interrupt signals
    system.boot(); ...            # run
    trace.write("run.json")

What the file holds (one process, one track per thread):

- a track per thread: ``NS`` (the NS agent), each partition (under the SFN
  backend partitions have no threads of their own, but each still gets a
  track, so that who runs what stays visible), ``SPM`` (context switches and
  panics as instant events) and one track per interrupt source
  (``IRQ <source>``: a slice for each interrupt taken);
- a slice for each PSA API call, on the track of the thread that made it;
  a call that blocks lasts until the thread runs again; a client call names
  the handle (or SID) it was given and the service its message reached, and
  a call the SPM rejected carries the rejection's ``reason``;
- a slice for each service invocation (``serve <service>``): under the IPC
  backend from ``psa_get`` to the end of ``psa_reply``, under the SFN backend
  from the delivery of the message to the reply made on the service
  function's return;
- at isolation levels 2 and 3, an instant event for each SVC entry, on the
  calling thread inside its API slice, and one for each isolation boundary
  switch, on ``SPM``;
- flow arrows from a client's ``psa_call``/``psa_connect``/``psa_close`` to the
  service invocation its message starts, and from the reply back to the
  client's call; and from an interrupt to the ``psa_wait`` that returned its
  signal (when :meth:`ChromeTrace.attach` told the trace the signals).

Timestamps are wall-clock microseconds since the trace was made, made strictly
increasing so that every flow end lies inside the slice it binds to.  A system
without a tracer pays nothing for any of this (the kernel tests
``tracer is not None``).

Recording and export are apart, so that a traced run stays close to an
untraced one: each callback only appends one small tuple to
:attr:`ChromeTrace.events` (what happened, the names and ints it was given,
one ``perf_counter_ns`` reading) and builds nothing.  :meth:`~ChromeTrace.to_json`
and :meth:`~ChromeTrace.write` replay those records into tracks, slices, flows
and Chrome event dicts (:class:`_Export`).  Every timestamp the export needs
within one callback is derived from that callback's one reading, kept strictly
increasing by nanosecond steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

from psaspm.kernel.api import API, NAMES, Kind
from psaspm.kernel.contract import Rejected

# APIs whose return delivers a reply to the thread that called them.
_CLIENT_APIS = frozenset(a.name for a in API if a.kind is Kind.CLIENT)
# APIs whose first argument names a connection or service (call_enter's target): the
# client calls and the mailbox agent's.
_TARGET_APIS = frozenset(a.name for a in API if a.kind in (Kind.CLIENT, Kind.AGENT))
_CONNECT_APIS = frozenset({"psa_connect", "agent_psa_connect"})  # their target is a SID
_PID = 1
_SORT_NS = 0
_SORT_PARTITIONS = 10
_SORT_SPM = 1000
_SORT_IRQ = 2000

# Record kinds: the first item of each tuple in ``ChromeTrace.events``.
_ENTER = 0  # (kind, thread, api, ns)
_EXIT = 1  # (kind, thread, api, int result, ns): the API returned an int (or bool)
_EXIT_OBJ = 2  # (kind, thread, api, handle or _NO_HANDLE, ns): it returned something else
_SWITCH = 3  # (kind, from_thread, to_thread, ns)
_MESSAGE = 4  # (kind, client, partition, service, handle, type, ns)
_REPLY = 5  # (kind, service, client, handle, status, ns)
_INTERRUPT = 6  # (kind, source, partition, handling, where, signal or None, ns)
_PANIC = 7  # (kind, partition, api, reason, ns)
_END = 8  # (kind, ns): to_json() ended every open slice here
_CALL_ENTER = 9  # (kind, thread, api, target: int or its repr, ns)
_REJECTED = 10  # (kind, thread, api, int status, reason, ns): the SPM rejected the call
_SVC = 11  # (kind, thread, number, ns)
_BOUNDARY = 12  # (kind, from_thread, to_thread, ns)

_NO_HANDLE = object()  # an API result without a ``handle`` attribute


class _System(Protocol):
    """What :meth:`ChromeTrace.attach` reads from a ``psaspm.System``."""

    backend_name: str
    isolation: int

    @property
    def interface(self) -> str: ...

    def layout(self) -> dict[str, Any]: ...


class ChromeTrace:
    """A ``Tracer`` that records a run as Chrome trace-event JSON.

    ``events`` holds the raw records, one tuple of names, ints and a clock
    reading per callback, in order (clearing it forgets what was recorded so
    far; what :meth:`attach` learnt stays); the Chrome events are built from
    them by :meth:`to_json`/:meth:`write`.
    """

    def __init__(self, process_name: str = "psaspm") -> None:
        self.process_name = process_name
        self.events: list[tuple[Any, ...]] = []
        self.irq_signals: dict[str, int] = {}  # interrupt source -> its signal
        self._t0 = time.perf_counter_ns()
        self._tracks: list[tuple[str, int | None]] = []  # from attach(): name, sort index
        self._recorders()

    # ------------------------------------------------------------ set-up
    def attach(self, system: _System) -> None:
        """Name the process after ``system``'s configuration; order tracks; learn IRQ signals."""
        self.process_name = (
            f"psaspm: backend {system.backend_name}, isolation {system.isolation} "
            f"({system.interface} interface)"
        )
        self._tracks.append(("NS", None))
        layout = system.layout()
        for index, part in enumerate(
            sorted(layout["partitions"], key=lambda p: (p["load_order"], p["pid"]))
        ):
            self._tracks.append((part["name"], _SORT_PARTITIONS + index))
            for irq in part["irqs"]:
                self.irq_signals[str(irq["source"])] = int(irq["signal"])

    # ------------------------------------------------------------ Tracer protocol
    # The callbacks are closures made in __init__ (no attribute lookups per
    # call): each appends one tuple and reads the clock once; nothing else.
    api_enter: Callable[[str, str], None]
    call_enter: Callable[[str, str, object], None]
    api_exit: Callable[[str, str, object], None]
    svc: Callable[[str, int], None]
    switch: Callable[[str, str], None]
    boundary: Callable[[str, str], None]
    message: Callable[[str, str, str, int, int], None]
    reply: Callable[[str, str, int, int], None]
    interrupt: Callable[[str, str, str, str], None]
    panic: Callable[[str, str, str], None]

    def _recorders(self) -> None:
        append = self.events.append  # ``events`` is cleared, never replaced
        clock = time.perf_counter_ns

        def api_enter(thread: str, api: str) -> None:
            append((_ENTER, thread, api, clock()))

        def call_enter(thread: str, api: str, target: object) -> None:
            # A caller's handle or SID is an int; anything else (a caller's mistake)
            # is kept as a short repr, not as the object.
            if target.__class__ is not int:
                target = f"{target!r:.40}"
            append((_CALL_ENTER, thread, api, target, clock()))

        def api_exit(thread: str, api: str, result: object) -> None:
            # Ints (statuses, signals, sizes) as they are; of anything else only
            # its handle (psa_get's psa_msg_t): a psa_read's bytes are not kept.
            # Only a rejected call (a Rejected status) pays for keeping its reason.
            cls = result.__class__
            if cls is int:
                append((_EXIT, thread, api, result, clock()))
            elif cls is Rejected:
                rejected = cast(Rejected, result)
                append((_REJECTED, thread, api, int(rejected), rejected.reason, clock()))
            elif isinstance(result, int):
                append((_EXIT, thread, api, result, clock()))
            else:
                append((_EXIT_OBJ, thread, api, getattr(result, "handle", _NO_HANDLE), clock()))

        def svc(thread: str, number: int) -> None:
            append((_SVC, thread, number, clock()))

        def switch(from_thread: str, to_thread: str) -> None:
            append((_SWITCH, from_thread, to_thread, clock()))

        def boundary(from_thread: str, to_thread: str) -> None:
            append((_BOUNDARY, from_thread, to_thread, clock()))

        def message(client: str, partition: str, service: str, handle: int, type: int) -> None:
            append((_MESSAGE, client, partition, service, handle, type, clock()))

        def reply(service: str, client: str, handle: int, status: int) -> None:
            append((_REPLY, service, client, handle, status, clock()))

        def interrupt(source: str, partition: str, handling: str, where: str) -> None:
            signal = self.irq_signals.get(source)  # as known now (rare: looked up)
            append((_INTERRUPT, source, partition, handling, where, signal, clock()))

        def panic(partition: str, api: str, reason: str) -> None:
            append((_PANIC, partition, api, reason, clock()))

        self.api_enter = api_enter
        self.call_enter = call_enter
        self.api_exit = api_exit
        self.svc = svc
        self.switch = switch
        self.boundary = boundary
        self.message = message
        self.reply = reply
        self.interrupt = interrupt
        self.panic = panic

    # ------------------------------------------------------------ output
    def to_json(self) -> dict[str, Any]:
        """The trace as a JSON-serialisable dict (the JSON Object Format).

        Slices still open end here, marked ``"unfinished": "end of trace"``.
        """
        self.events.append((_END, time.perf_counter_ns()))
        export = _Export(self._t0, self._tracks)
        export.replay(self.events)
        return export.to_json(self.process_name)

    def write(self, path: str | Path) -> None:
        """Write the trace file (open it in https://ui.perfetto.dev or chrome://tracing)."""
        data = self.to_json()
        Path(path).write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- export
class _Slice:
    __slots__ = ("args", "cat", "name", "start", "track")

    def __init__(self, name: str, cat: str, track: str, start: int, args: dict[str, Any]) -> None:
        self.name = name
        self.cat = cat
        self.track = track
        self.start = start
        self.args = args


class _Message:
    """A delivered message: where its flow starts, and its service slice once served."""

    __slots__ = (
        "client",
        "flow_at",
        "partition",
        "service",
        "serving",
        "sfn_flow_at",
        "sfn_start",
        "type",
    )

    def __init__(self, client: str, partition: str, service: str, type: int, flow_at: int) -> None:
        self.client = client
        self.partition = partition  # the service's partition: its track
        self.service = service
        self.type = type
        self.flow_at = flow_at  # the "s" end of the arrow, inside the client's call
        self.sfn_start = 0  # where the slice starts if the service runs at once (SFN)
        self.sfn_flow_at = 0
        self.serving: _Slice | None = None  # the open slice, once psa_get took it (IPC)

    def slice_args(self, **more: Any) -> dict[str, Any]:
        """The service slice's args: who asked, and what kind of message it is."""
        return {"client": self.client, "kind": _kind(self.type), "type": self.type, **more}


def _kind(type: int) -> str:
    if type == -1:
        return "CONNECT"
    if type == -2:
        return "DISCONNECT"
    return "call"


def _target(api: str, target: object) -> dict[str, Any]:
    """A client call's slice args for the handle or SID it was given."""
    text = f"{target:#x}" if isinstance(target, int) else target
    return {"sid": text} if api in _CONNECT_APIS else {"handle": text}


def _us(ns: int) -> float:
    return ns / 1000


class _Export:
    """Replays recorded callbacks into Chrome events: tracks, slices, flows.

    Each record's handler works as if the callback had run then: its clock
    reads (:meth:`_now`) all start from the record's one reading.
    """

    def __init__(self, t0: int, tracks: list[tuple[str, int | None]]) -> None:
        self.events: list[dict[str, Any]] = []
        self._t0 = t0
        self._at = 0  # the current record's reading, relative to t0
        self._last = 0
        self._tids: dict[str, int] = {}
        self._sort: dict[str, int] = {}
        self._stacks: dict[str, list[_Slice]] = {}
        self._flows = 0
        self._messages: dict[int, _Message] = {}  # connection handle -> message in flight
        self._replies: dict[str, list[tuple[str, int, int]]] = {}  # client -> (track, at, id)
        self._closing: dict[str, list[_Slice]] = {}  # thread -> service slices to end
        self._irq: _Slice | None = None  # the interrupt slice ending at the next event
        self._wakes: dict[str, list[tuple[int, str, int]]] = {}  # partition -> signal, track, at
        for name, sort in tracks:
            self._track(name, sort)

    def replay(self, records: list[tuple[Any, ...]]) -> None:
        t0 = self._t0
        for record in records:
            kind = record[0]
            self._at = record[-1] - t0
            if kind == _END:  # its time first: an interrupt slice still open ends after it
                self._close_all(self._now(), "end of trace")
                continue
            if kind != _BOUNDARY:
                self._settle()  # any other event ends the interrupt slice before it
            if kind == _ENTER:
                self._open(record[2], "psa", record[1], self._now())
            elif kind == _CALL_ENTER:
                self._open(record[2], "psa", record[1], self._now(), **_target(*record[2:4]))
            elif kind == _EXIT:
                self._api_exit(record[1], record[2], record[3], _NO_HANDLE)
            elif kind == _REJECTED:
                self._api_exit(record[1], record[2], record[3], _NO_HANDLE, record[4])
            elif kind == _EXIT_OBJ:
                self._api_exit(record[1], record[2], None, record[3])
            elif kind == _SVC:
                number = record[2]
                args = {"number": f"{number:#04x}", "api": NAMES[number]}
                self._emit("i", "SVC", "svc", record[1], self._now(), s="t", args=args)
            elif kind == _SWITCH:
                name = f"{record[1]} -> {record[2]}"
                self._emit("i", name, "schedule", "SPM", self._now(), s="t")
            elif kind == _BOUNDARY:
                name = f"boundary {record[1]} -> {record[2]}"
                self._emit("i", name, "boundary", "SPM", self._now(), s="t")
                irq = self._irq
                if irq is not None and irq.args["partition"] == record[1]:
                    self._settle()  # a FLIH's switch back out of its owner's boundary ends it
            elif kind == _MESSAGE:
                self._message(*record[1:6])
            elif kind == _REPLY:
                self._reply(*record[1:5])
            elif kind == _INTERRUPT:
                self._interrupt(*record[1:6])
            elif kind == _PANIC:
                self._panic(*record[1:4])

    # ------------------------------------------------------------ clock and tracks
    def _now(self) -> int:
        """Nanoseconds since the trace began, strictly increasing."""
        now = self._at
        if now <= self._last:
            now = self._last + 1
        self._last = now
        return now

    def _track(self, name: str, sort: int | None = None) -> int:
        tid = self._tids.get(name)
        if tid is None:
            tid = len(self._tids) + 1
            self._tids[name] = tid
            if sort is None:
                if name == "NS":
                    sort = _SORT_NS
                elif name == "SPM":
                    sort = _SORT_SPM
                elif name.startswith("IRQ "):
                    sort = _SORT_IRQ + tid
                else:
                    sort = _SORT_PARTITIONS + 100 + tid
            self._sort[name] = sort
            self._stacks[name] = []
        return tid

    def _emit(self, ph: str, name: str, cat: str, track: str, at: int, **extra: Any) -> None:
        event: dict[str, Any] = {
            "ph": ph,
            "name": name,
            "cat": cat,
            "pid": _PID,
            "tid": self._track(track),
            "ts": _us(at),
        }
        event.update(extra)
        self.events.append(event)

    def _end(self, piece: _Slice, end: int, **more: Any) -> None:
        args = dict(piece.args, **more) if more else piece.args
        extra: dict[str, Any] = {"dur": _us(end - piece.start)}
        if args:
            extra["args"] = args
        self._emit("X", piece.name, piece.cat, piece.track, piece.start, **extra)

    def _open(self, name: str, cat: str, track: str, at: int, **args: Any) -> _Slice:
        self._track(track)
        piece = _Slice(name, cat, track, at, args)
        self._stacks[track].append(piece)
        return piece

    def _pop(self, track: str, piece: _Slice, end: int) -> None:
        """End an open slice; one that others opened after it is cut short where they began."""
        stack = self._stacks[track]
        index = next((i for i in range(len(stack) - 1, -1, -1) if stack[i] is piece), None)
        if index is None:
            return
        if index == len(stack) - 1:
            stack.pop()
            self._end(piece, end)
        else:  # not nested (e.g. replies out of order): keep the file well nested
            self._end(piece, stack[index + 1].start, cut_short=True)
            del stack[index]

    def _flow(self, name: str, src: tuple[str, int], dst: tuple[str, int]) -> None:
        """An arrow from the slice enclosing ``src`` to the one enclosing ``dst``."""
        self._flows += 1
        self._emit("s", name, "flow", src[0], src[1], id=self._flows)
        self._emit("f", name, "flow", dst[0], dst[1], id=self._flows, bp="e")

    def _settle(self) -> None:
        """End the interrupt slice before this event (a FLIH runs until the SPM goes on)."""
        irq = self._irq
        if irq is not None:
            self._irq = None
            self._pop(irq.track, irq, self._now())

    # ------------------------------------------------------------ one record each
    def _api_exit(
        self, thread: str, api: str, result: int | None, handle: object, reason: str | None = None
    ) -> None:
        stack = self._stacks.get(thread)
        if not stack:
            return
        piece = next((p for p in reversed(stack) if p.name == api and p.cat == "psa"), None)
        if piece is None:
            return
        if api in _CLIENT_APIS:
            for track, at, _ in self._replies.pop(thread, []):
                self._flow("reply", (track, at), (thread, self._now()))
            if result is not None:
                piece.args["status"] = result
                if api == "psa_connect" and result > 0:
                    piece.args["handle"] = f"{result:#x}"
        elif api == "psa_wait" and result is not None:
            piece.args["signals"] = f"{result:#x}"
            pending = self._wakes.get(thread)
            if pending:
                keep = []
                for signal, track, at in pending:
                    if signal & result:
                        self._flow("interrupt", (track, at), (thread, self._now()))
                    else:
                        keep.append((signal, track, at))
                self._wakes[thread] = keep
        elif api == "psa_get" and handle is not _NO_HANDLE:
            piece.args["handle"] = f"{handle:#x}"
        elif result is not None and not isinstance(result, bool):
            piece.args["result"] = result
        if reason is not None:
            piece.args["reason"] = reason
        self._pop(thread, piece, self._now())
        if api == "psa_get":
            message = self._messages.get(handle) if isinstance(handle, int) else None
            if message is not None:
                start = self._now()
                message.serving = self._open(
                    f"serve {message.service}", "service", thread, start, **message.slice_args()
                )
                self._flow("message", (message.client, message.flow_at), (thread, self._now()))
        elif api == "psa_reply":
            for serving in self._closing.pop(thread, []):
                self._pop(thread, serving, self._now())

    def _message(self, client: str, partition: str, service: str, handle: int, type: int) -> None:
        message = _Message(client, partition, service, type, self._now())
        message.sfn_start = self._now()
        message.sfn_flow_at = self._now()
        self._messages[handle] = message
        # The client's call that sent it (if it is the call running) names the service.
        stack = self._stacks.get(client)
        if stack:
            call = stack[-1]
            if call.cat == "psa" and call.name in _TARGET_APIS:
                call.args["service"] = service

    def _reply(self, service: str, client: str, handle: int, status: int) -> None:
        message = self._messages.pop(handle, None)
        at = self._now()
        self._replies.setdefault(client, []).append((service, at, handle))
        if message is None:
            return
        if message.serving is not None:  # IPC: ends with the psa_reply that is running
            message.serving.args["status"] = status
            self._closing.setdefault(service, []).append(message.serving)
            return
        # SFN: the service function ran inside the client's call and has returned.
        track = message.partition
        self._track(track)
        piece = _Slice(
            f"serve {message.service}",
            "service",
            track,
            message.sfn_start,
            message.slice_args(status=status),
        )
        self._end(piece, self._now())
        self._flow("message", (client, message.flow_at), (track, message.sfn_flow_at))

    def _interrupt(
        self, source: str, partition: str, handling: str, where: str, signal: int | None
    ) -> None:
        track = f"IRQ {source}"
        start = self._now()
        self._irq = self._open(
            f"{handling} {source}", "interrupt", track, start, partition=partition, preempted=where
        )
        if signal is not None:
            pending = [w for w in self._wakes.get(partition, []) if w[0] != signal]
            pending.append((signal, track, self._now()))
            self._wakes[partition] = pending

    def _panic(self, partition: str, api: str, reason: str) -> None:
        at = self._now()
        self._emit(
            "i",
            f"panic: {partition} in {api}",
            "panic",
            "SPM",
            at,
            s="g",
            args={"partition": partition, "api": api, "reason": reason},
        )
        self._close_all(at, "panic")

    def _close_all(self, at: int, why: str) -> None:
        """End every open slice (the SPE halted, or the trace ends)."""
        self._settle()
        for stack in self._stacks.values():
            while stack:
                self._end(stack.pop(), at, unfinished=why)
        self._messages.clear()
        self._replies.clear()
        self._closing.clear()
        self._wakes.clear()

    def to_json(self, process_name: str) -> dict[str, Any]:
        meta: list[dict[str, Any]] = [
            {
                "ph": "M",
                "name": "process_name",
                "pid": _PID,
                "tid": 0,
                "args": {"name": process_name},
            }
        ]
        for name, tid in self._tids.items():
            meta.append(
                {"ph": "M", "name": "thread_name", "pid": _PID, "tid": tid, "args": {"name": name}}
            )
            meta.append(
                {
                    "ph": "M",
                    "name": "thread_sort_index",
                    "pid": _PID,
                    "tid": tid,
                    "args": {"sort_index": self._sort[name]},
                }
            )
        return {
            "traceEvents": meta + self.events,
            "displayTimeUnit": "ns",
            "otherData": {"producer": "psaspm", "process": process_name},
        }
