"""The one door between partition code and the SPM.

``psaspm.psa`` calls ``DOOR.iface.<api>(...)``; the running system installs
its interface here while it executes secure code and restores the previous
one afterwards.  Lowest kernel layer: it imports nothing from the kernel.
"""

from __future__ import annotations

from typing import Any


class _NoSystem:
    """The interface in force when no system runs: every PSA call is refused."""

    def __getattr__(self, api: str) -> Any:
        def refuse(*_args: object, **_kwargs: object) -> Any:
            raise RuntimeError(
                f"{api}() called with no psaspm system running: the PSA API is for "
                "partition code, which runs inside system.boot() or a non-secure call"
            )

        return refuse


class Door:
    """``iface``: the running system's interface; ``system``: that system, for the HAL."""

    __slots__ = ("iface", "system")

    def __init__(self) -> None:
        self.iface: Any = _NoSystem()
        self.system: Any = _NoSystem()


NO_SYSTEM: Any = _NoSystem()
DOOR = Door()
