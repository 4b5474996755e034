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
    """What a trace writer receives.  Thread names are partition names or ``"NS"``."""

    def api_enter(self, thread: str, api: str) -> None: ...
    def api_exit(self, thread: str, api: str, result: object) -> None: ...
    def switch(self, from_thread: str, to_thread: str) -> None: ...
    def message(self, client: str, service: str, handle: int, type: int) -> None: ...
    def reply(self, service: str, client: str, handle: int, status: int) -> None: ...
    def interrupt(self, source: str, partition: str, handling: str, where: str) -> None: ...
    def panic(self, partition: str, api: str, reason: str) -> None: ...


class EventLog:
    """A tracer that keeps every event as a tuple, in order: for tests and debugging."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def api_enter(self, thread: str, api: str) -> None:
        self.events.append(("enter", thread, api))

    def api_exit(self, thread: str, api: str, result: object) -> None:
        self.events.append(("exit", thread, api))

    def switch(self, from_thread: str, to_thread: str) -> None:
        self.events.append(("switch", from_thread, to_thread))

    def message(self, client: str, service: str, handle: int, type: int) -> None:
        self.events.append(("message", client, service, type))

    def reply(self, service: str, client: str, handle: int, status: int) -> None:
        self.events.append(("reply", service, client, status))

    def interrupt(self, source: str, partition: str, handling: str, where: str) -> None:
        self.events.append(("interrupt", source, partition, handling, where))

    def panic(self, partition: str, api: str, reason: str) -> None:
        self.events.append(("panic", partition, api, reason))
