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
  a call that blocks lasts until the thread runs again;
- a slice for each service invocation (``serve ...``): under the IPC backend
  from ``psa_get`` to the end of ``psa_reply``, under the SFN backend from the
  delivery of the message to the reply made on the service function's return;
- flow arrows from a client's ``psa_call``/``psa_connect``/``psa_close`` to the
  service invocation its message starts, and from the reply back to the
  client's call; and from an interrupt to the ``psa_wait`` that returned its
  signal (when :meth:`ChromeTrace.attach` told the trace the signals).

Timestamps are wall-clock microseconds since the trace was made, made strictly
increasing so that every flow end lies inside the slice it binds to.  Events
are kept in memory and written at the end; a system without a tracer pays
nothing for any of this (the kernel tests ``tracer is not None``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

# APIs whose return delivers a reply to the thread that called them.
_CLIENT_APIS = frozenset({"psa_call", "psa_connect", "psa_close"})
_PID = 1
_SORT_NS = 0
_SORT_PARTITIONS = 10
_SORT_SPM = 1000
_SORT_IRQ = 2000


class _System(Protocol):
    """What :meth:`ChromeTrace.attach` reads from a ``psaspm.System``."""

    backend_name: str
    isolation: int

    @property
    def interface(self) -> str: ...

    def layout(self) -> dict[str, Any]: ...


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

    __slots__ = ("client", "flow_at", "kind", "service", "serving", "sfn_flow_at", "sfn_start")

    def __init__(self, client: str, service: str, kind: str, flow_at: int) -> None:
        self.client = client
        self.service = service
        self.kind = kind
        self.flow_at = flow_at  # the "s" end of the arrow, inside the client's call
        self.sfn_start = 0  # where the slice starts if the service runs at once (SFN)
        self.sfn_flow_at = 0
        self.serving: _Slice | None = None  # the open slice, once psa_get took it (IPC)


def _kind(type: int) -> str:
    if type == -1:
        return "CONNECT"
    if type == -2:
        return "DISCONNECT"
    return f"call type {type}"


def _us(ns: int) -> float:
    return ns / 1000


class ChromeTrace:
    """A ``Tracer`` that records a run as Chrome trace-event JSON."""

    def __init__(self, process_name: str = "psaspm") -> None:
        self.process_name = process_name
        self.events: list[dict[str, Any]] = []
        self._t0 = time.perf_counter_ns()
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
        self.irq_signals: dict[str, int] = {}  # interrupt source -> its signal

    # ------------------------------------------------------------ set-up
    def attach(self, system: _System) -> None:
        """Name the process after ``system``'s configuration; order tracks; learn IRQ signals."""
        self.process_name = (
            f"psaspm: backend {system.backend_name}, isolation {system.isolation} "
            f"({system.interface} interface)"
        )
        self._track("NS")
        layout = system.layout()
        for index, part in enumerate(
            sorted(layout["partitions"], key=lambda p: (p["load_order"], p["pid"]))
        ):
            self._track(part["name"], _SORT_PARTITIONS + index)
            for irq in part["irqs"]:
                self.irq_signals[str(irq["source"])] = int(irq["signal"])

    # ------------------------------------------------------------ clock and tracks
    def _now(self) -> int:
        """Nanoseconds since the trace began, strictly increasing."""
        now = time.perf_counter_ns() - self._t0
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
        """Any event ends the interrupt slice before it (a FLIH runs until the SPM goes on)."""
        irq = self._irq
        if irq is not None:
            self._irq = None
            self._pop(irq.track, irq, self._now())

    # ------------------------------------------------------------ Tracer protocol
    def api_enter(self, thread: str, api: str) -> None:
        self._settle()
        self._open(api, "psa", thread, self._now())

    def api_exit(self, thread: str, api: str, result: object) -> None:
        self._settle()
        stack = self._stacks.get(thread)
        if not stack:
            return
        piece = next((p for p in reversed(stack) if p.name == api and p.cat == "psa"), None)
        if piece is None:
            return
        if api in _CLIENT_APIS:
            for track, at, _ in self._replies.pop(thread, []):
                self._flow("reply", (track, at), (thread, self._now()))
            if isinstance(result, int):
                piece.args["status"] = result
        elif api == "psa_wait" and isinstance(result, int):
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
        elif api == "psa_get" and hasattr(result, "handle"):
            piece.args["handle"] = f"{result.handle:#x}"
        elif isinstance(result, int) and not isinstance(result, bool):
            piece.args["result"] = result
        self._pop(thread, piece, self._now())
        if api == "psa_get":
            handle = getattr(result, "handle", None)
            message = self._messages.get(handle) if isinstance(handle, int) else None
            if message is not None:
                start = self._now()
                message.serving = self._open(
                    f"serve {message.kind}", "service", thread, start, client=message.client
                )
                self._flow("message", (message.client, message.flow_at), (thread, self._now()))
        elif api == "psa_reply":
            for serving in self._closing.pop(thread, []):
                self._pop(thread, serving, self._now())

    def switch(self, from_thread: str, to_thread: str) -> None:
        self._settle()
        self._emit("i", f"{from_thread} -> {to_thread}", "schedule", "SPM", self._now(), s="t")

    def message(self, client: str, service: str, handle: int, type: int) -> None:
        self._settle()
        message = _Message(client, service, _kind(type), self._now())
        message.sfn_start = self._now()
        message.sfn_flow_at = self._now()
        self._messages[handle] = message

    def reply(self, service: str, client: str, handle: int, status: int) -> None:
        self._settle()
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
        self._track(service)
        piece = _Slice(
            f"serve {message.kind}",
            "service",
            service,
            message.sfn_start,
            {"client": client, "status": status},
        )
        self._end(piece, self._now())
        self._flow("message", (client, message.flow_at), (service, message.sfn_flow_at))

    def interrupt(self, source: str, partition: str, handling: str, where: str) -> None:
        self._settle()
        track = f"IRQ {source}"
        start = self._now()
        self._irq = self._open(
            f"{handling} {source}", "interrupt", track, start, partition=partition, preempted=where
        )
        signal = self.irq_signals.get(source)
        if signal is not None:
            pending = [w for w in self._wakes.get(partition, []) if w[0] != signal]
            pending.append((signal, track, self._now()))
            self._wakes[partition] = pending

    def panic(self, partition: str, api: str, reason: str) -> None:
        self._settle()
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

    # ------------------------------------------------------------ output
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

    def to_json(self) -> dict[str, Any]:
        """The trace as a JSON-serialisable dict (the JSON Object Format)."""
        self._close_all(self._now(), "end of trace")
        meta: list[dict[str, Any]] = [
            {
                "ph": "M",
                "name": "process_name",
                "pid": _PID,
                "tid": 0,
                "args": {"name": self.process_name},
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
            "otherData": {"producer": "psaspm", "process": self.process_name},
        }

    def write(self, path: str | Path) -> None:
        """Write the trace file (open it in https://ui.perfetto.dev or chrome://tracing)."""
        data = self.to_json()
        Path(path).write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
