"""A minimal in-memory Chrome trace-event recorder implementing the kernel's ``Tracer``.

Stand-in for the real trace writer (another issue): callbacks append event
dicts in the Chrome trace-event format (``chrome://tracing``, Perfetto) to
``self.events``: one complete ("X") event per PSA API call, an instant ("i")
event per switch, message, reply, interrupt and panic.  :meth:`dump` writes
``{"traceEvents": [...]}``.  Each thread name gets a numeric ``tid`` and one
``thread_name`` metadata event.
"""

from __future__ import annotations

import json
from pathlib import Path
from time import perf_counter_ns
from typing import Any

_PID = 1


class ChromeTrace:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._tids: dict[str, int] = {}
        self._open: dict[str, int] = {}  # per thread: start of the API call in progress
        self._t0 = perf_counter_ns()

    def _new_tid(self, thread: str) -> int:
        tid = self._tids[thread] = len(self._tids) + 1
        self.events.append(
            {"ph": "M", "name": "thread_name", "pid": _PID, "tid": tid, "args": {"name": thread}}
        )
        return tid

    def _instant(self, thread: str, name: str, args: dict[str, Any]) -> None:
        self.events.append(
            {
                "ph": "i",
                "s": "t",
                "name": name,
                "ts": (perf_counter_ns() - self._t0) / 1000.0,
                "pid": _PID,
                "tid": self._tids.get(thread) or self._new_tid(thread),
                "args": args,
            }
        )

    # ---- the Tracer protocol
    # A PSA API call becomes one complete ("X") event, appended when it returns; its
    # start time waits in ``_open`` (a thread makes one PSA call at a time; a blocked
    # psa_wait spans its wait).
    def api_enter(self, thread: str, api: str) -> None:
        self._open[thread] = perf_counter_ns()

    def api_exit(self, thread: str, api: str, result: object) -> None:
        now = perf_counter_ns()
        start = self._open.pop(thread, now)
        # Statuses, signals and handles as they are; other results by kind and size
        # (a psa_read's bytes or a psa_msg_t are not copied into the trace).
        cls = result.__class__
        if cls is int or result is None:
            args: dict[str, object] = {"result": result}
        elif cls is bytes:
            args = {"bytes": len(result)}  # type: ignore[arg-type]
        else:
            args = {"type": cls.__name__}
        self.events.append(
            {
                "ph": "X",
                "name": api,
                "ts": (start - self._t0) / 1000.0,
                "dur": (now - start) / 1000.0,
                "pid": _PID,
                "tid": self._tids.get(thread) or self._new_tid(thread),
                "args": args,
            }
        )

    def switch(self, from_thread: str, to_thread: str) -> None:
        self._instant(from_thread, "switch", {"to": to_thread})

    def message(self, client: str, service: str, handle: int, type: int) -> None:
        self._instant(client, "message", {"service": service, "handle": handle, "type": type})

    def reply(self, service: str, client: str, handle: int, status: int) -> None:
        self._instant(service, "reply", {"client": client, "handle": handle, "status": status})

    def interrupt(self, source: str, partition: str, handling: str, where: str) -> None:
        self._instant(
            partition, "interrupt", {"source": source, "handling": handling, "where": where}
        )

    def panic(self, partition: str, api: str, reason: str) -> None:
        self._instant(partition, "panic", {"api": api, "reason": reason})

    # ---- output
    def clear(self) -> None:
        """Drop recorded events (thread names are re-announced on next use; API calls
        in progress keep their start times)."""
        self.events.clear()
        self._tids.clear()

    def dump(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"traceEvents": self.events, "displayTimeUnit": "ns"}, out)
