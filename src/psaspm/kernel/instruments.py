"""Instruments the kernel calls only when installed: counters and a tracer.

The kernel holds ``counters`` and ``tracer`` as attributes that are ``None``
when off; every use is guarded by one ``is not None`` test, so an instrument
that is not installed costs one attribute load and one comparison.
"""

from __future__ import annotations

from typing import Protocol

# The counters in the order reports show them.
COUNTER_NAMES = (
    "psa_calls",
    "messages",
    "context_switches",
    "svc_entries",
    "boundary_switches",
    "interrupts",
    "panics",
)


class Counters:
    """``system.stats``: counters since the first boot, across resets (contract section 8)."""

    __slots__ = (
        "boundary_switches",
        "context_switches",
        "interrupts",
        "messages",
        "panics",
        "psa_calls",
        "resets",
        "svc_entries",
    )

    def __init__(self) -> None:
        self.psa_calls = 0
        self.messages = 0
        self.context_switches = 0
        self.svc_entries = 0
        self.boundary_switches = 0
        self.interrupts = 0
        self.panics = 0
        self.resets = 0  # system.reset() calls

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in sorted(self.__slots__)}


class Tracer(Protocol):
    """What a trace writer receives.  Thread names are partition names or ``"NS"``.

    - ``api_enter``/``api_exit``: a PSA API call's entry and its result (a
      rejected client call's status is a ``contract.Rejected``, with its reason);
      a client call (``psa_connect``/``psa_call``/``psa_close`` and the mailbox
      agent's) enters by ``call_enter`` instead, with the handle or SID it names.
    - ``svc``: an SVC entry (isolation levels 2 and 3), right after the entry.
    - ``switch``: a context switch; ``boundary``: an isolation boundary switch
      (one with a context switch between boundaries, two around a FLIH run in
      another boundary: in and back).
    - ``message``: a message delivered to ``service`` of ``partition``
      (``handle`` is the connection's); ``reply``: a reply to it.
    """

    def api_enter(self, thread: str, api: str) -> None: ...
    def call_enter(self, thread: str, api: str, target: object) -> None: ...
    def api_exit(self, thread: str, api: str, result: object) -> None: ...
    def svc(self, thread: str, number: int) -> None: ...
    def switch(self, from_thread: str, to_thread: str) -> None: ...
    def boundary(self, from_thread: str, to_thread: str) -> None: ...
    def message(
        self, client: str, partition: str, service: str, handle: int, type: int
    ) -> None: ...
    def reply(self, service: str, client: str, handle: int, status: int) -> None: ...
    def interrupt(self, source: str, partition: str, handling: str, where: str) -> None: ...
    def panic(self, partition: str, api: str, reason: str) -> None: ...


class EventLog:
    """A tracer that keeps every event as a tuple, in order: for tests and debugging."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def api_enter(self, thread: str, api: str) -> None:
        self.events.append(("enter", thread, api))

    def call_enter(self, thread: str, api: str, target: object) -> None:
        self.events.append(("enter", thread, api))

    def api_exit(self, thread: str, api: str, result: object) -> None:
        self.events.append(("exit", thread, api))

    def svc(self, thread: str, number: int) -> None:
        self.events.append(("svc", thread, number))

    def switch(self, from_thread: str, to_thread: str) -> None:
        self.events.append(("switch", from_thread, to_thread))

    def boundary(self, from_thread: str, to_thread: str) -> None:
        self.events.append(("boundary", from_thread, to_thread))

    def message(self, client: str, partition: str, service: str, handle: int, type: int) -> None:
        self.events.append(("message", client, partition, service, type))

    def reply(self, service: str, client: str, handle: int, status: int) -> None:
        self.events.append(("reply", service, client, status))

    def interrupt(self, source: str, partition: str, handling: str, where: str) -> None:
        self.events.append(("interrupt", source, partition, handling, where))

    def panic(self, partition: str, api: str, reason: str) -> None:
        self.events.append(("panic", partition, api, reason))
