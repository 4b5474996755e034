"""The watchdog: a host thread that stops partition code running away.

Installed by ``load(..., watchdog=SECONDS)``.  While secure code runs, the
watchdog thread samples the system's progress: a new entry into the SPE
from the non-secure side, or a context switch (a thread blocked or was
preempted).  When neither happens for ``SECONDS`` while secure code runs, it
names the partition running then and raises :class:`WatchdogExpired` into
the SPE's thread, at the next Python bytecode of whatever runs there; the
kernel turns it into a panic with ``api == "watchdog"``.  C code that never
returns to Python cannot be interrupted in-process: if the exception has not
arrived after another ``SECONDS`` (at least one), the watchdog ends the
process with exit status 1, naming the partition (contract section 12).

Costs nothing when not installed; when installed, one counter increment per
non-secure entry into the SPE (context switches are counted anyway).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
import weakref
from typing import Protocol

from psaspm.kernel.contract import WatchdogExpired

_SetAsyncExc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_SetAsyncExc.argtypes = (ctypes.c_ulong, ctypes.py_object)


def raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """CPython's asynchronous exception: ``exc`` is raised in thread ``thread_id`` at the
    next bytecode it runs (None withdraws one not raised yet)."""
    _SetAsyncExc(thread_id, exc)


class Watched(Protocol):
    """What the watchdog reads of a system (racy reads of ints and names are fine)."""

    def watch_progress(self) -> tuple[int, int] | None:
        """``(entries, context switches)`` while secure code runs; None when the SPE is idle."""

    def watch_running(self) -> str:
        """The partition running now."""


class Watchdog:
    def __init__(self, seconds: float, thread_id: int) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ValueError(f"watchdog must be a positive number of seconds, not {seconds!r}")
        self.seconds = float(seconds)
        self.thread_id = thread_id  # the OS thread the system runs in
        self.entries = 0  # non-secure entries into the SPE (the system increments it)
        self.culprit: str | None = None  # the partition that was running when it fired
        self.delivered = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._target: weakref.ref[Watched] | None = None

    def start(self, target: Watched) -> None:
        """Watch ``target`` (from its own thread); idempotent.  The thread ends by itself
        once ``target`` is garbage (it holds only a weak reference)."""
        self._target = weakref.ref(target)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="psaspm-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def disarm(self) -> None:
        """The SPE left secure code: cancel an exception sent but not yet raised."""
        with self._lock:
            if self.culprit is not None and not self.delivered:
                raise_in_thread(self.thread_id, None)
                self.culprit = None

    def took(self) -> str:
        """The SPE's thread caught the exception: the partition it names (and re-arm)."""
        with self._lock:
            culprit = self.culprit or "?"
            self.delivered = True
            self.culprit = None
            return culprit

    def _run(self) -> None:
        period = min(self.seconds / 4, 0.05)
        self._last: tuple[int, int] | None = None
        self._since = time.monotonic()
        self._sent_at = 0.0
        while not self._stop.wait(period):
            target = self._target() if self._target is not None else None
            if target is None:
                return  # the system is gone
            self._sample(target, time.monotonic())
            del target  # hold the system only while sampling it

    def _sample(self, target: Watched, now: float) -> None:
        with self._lock:
            if self.culprit is not None:  # sent; waiting for it to arrive
                if now - self._sent_at > max(self.seconds, 1.0):
                    self._end_process(self.culprit)
                return
            progress = target.watch_progress()
            if progress is None or progress != self._last:
                self._last, self._since = progress, now
                return
            if now - self._since < self.seconds:
                return
            self.culprit = target.watch_running()
            self.delivered = False
            self._sent_at = now
            raise_in_thread(self.thread_id, WatchdogExpired)
            self._last = None

    def _end_process(self, culprit: str) -> None:
        sys.stderr.write(
            f"psaspm: watchdog: {culprit} ran for more than {self.seconds:g} s and cannot be "
            "interrupted in-process (C code that never calls the PSA API): ending the process\n"
        )
        sys.stderr.flush()
        os._exit(1)
