"""psaspm's two error families.

1. Configuration and programmer errors that the user can act on:
   :class:`ConfigError` (and its :class:`ManifestError`) for bad input, and
   :class:`Panic`, raised to the non-secure side when the SPE halted.
2. Internal errors (:class:`InternalError`): a bug in psaspm itself.  They are
   never caught and turned into statuses; they stop loudly.

This module is the bottom layer: it imports nothing from psaspm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


def is_psaspm_file(filename: str) -> bool:
    """Whether a traceback frame's file is one of psaspm's own sources: reports of the
    user's code (a panic, an import failure, the watchdog) leave those frames out."""
    return filename.startswith(_PACKAGE)


class ConfigError(Exception):
    """A system that cannot be built or booted as asked (bad option, missing code)."""


class ManifestError(ConfigError):
    """A manifest or manifest list that TF-M's rules (or psaspm's stricter ones) reject.

    ``problems`` holds every problem found when the loader could go on after
    the first; ``str()`` is the first one, which always names the file and
    the field.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = problems or (message,)


@dataclass(frozen=True)
class PanicRecord:
    """Why the SPE halted: which partition, in which PSA API, and what was wrong."""

    partition: str
    api: str
    reason: str
    traceback: str | None = None
    deadlock: bool = False  # every thread blocked: raised as :class:`Deadlock`

    def __str__(self) -> str:
        return f"{self.partition}: {self.api}: {self.reason}"


class Panic(Exception):
    """The SPE halted (contract section 6); ``record`` says why."""

    def __init__(self, record: PanicRecord) -> None:
        super().__init__(str(record))
        self.record = record


class Deadlock(Panic):
    """Every thread is blocked and nothing can wake one; ``record.reason`` says who waits for what."""


class InternalError(Exception):
    """A broken invariant inside psaspm: a bug, never a user error."""
