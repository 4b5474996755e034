"""A minimal in-memory Chrome trace-event recorder implementing the kernel's ``Tracer``.

Stand-in for the real trace writer (another issue): every callback appends one
event dict in the Chrome trace-event format (``chrome://tracing``, Perfetto) to
``self.events``; :meth:`dump` writes ``{"traceEvents": [...]}``.  Each thread
name gets a numeric ``tid`` and one ``thread_name`` metadata event.
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
        self._t0 = perf_counter_ns()

    def _tid(self, thread: str) -> int:
        tid = self._tids.get(thread)
        if tid is None:
            tid = self._tids[thread] = len(self._tids) + 1
            self.events.append(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": _PID,
                    "tid": tid,
                    "args": {"name": thread},
                }
            )
        return tid

    def _ts(self) -> float:
        return (perf_counter_ns() - self._t0) / 1000.0  # microseconds

    def _instant(self, thread: str, name: str, args: dict[str, Any]) -> None:
        self.events.append(
            {
                "ph": "i",
                "s": "t",
                "name": name,
                "ts": self._ts(),
                "pid": _PID,
                "tid": self._tid(thread),
                "args": args,
            }
        )

    # ---- the Tracer protocol
    def api_enter(self, thread: str, api: str) -> None:
        self.events.append(
            {"ph": "B", "name": api, "ts": self._ts(), "pid": _PID, "tid": self._tid(thread)}
        )

    def api_exit(self, thread: str, api: str, result: object) -> None:
        value = result if result is None or result.__class__ in (int, str) else repr(result)
        self.events.append(
            {
                "ph": "E",
                "name": api,
                "ts": self._ts(),
                "pid": _PID,
                "tid": self._tid(thread),
                "args": {"result": value},
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
        """Drop recorded events (thread names are re-announced on next use)."""
        self.events.clear()
        self._tids.clear()

    def dump(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"traceEvents": self.events, "displayTimeUnit": "ns"}, out)
