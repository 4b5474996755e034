"""The one door between partition code and the SPM.

``psaspm.psa`` calls ``DOOR.iface.<api>(...)``: the running system's
:class:`~psaspm.kernel._generated_api.Interface`, installed while it executes
secure code and restored afterwards.  ``psaspm.hal`` calls ``DOOR.hal``, the
running system's platform (memory, device registers, interrupt lines), typed
by :class:`Hal`.  With no system running, both refuse every call.

Low in the kernel: it imports only the API's typed surface and plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn, Protocol

from psaspm.kernel._generated_api import Interface
from psaspm.kernel.api import NAMES
from psaspm.kernel.memory import Ptr
from psaspm.kernel.objects import Buffer


class Hal(Protocol):
    """The platform as partition code reaches it (``psaspm.hal``), acting as the caller."""

    def constants(self) -> Mapping[str, int]: ...
    def assert_irq(self, source: str | int) -> None: ...
    def deassert_irq(self, source: str | int) -> None: ...
    def malloc(self, size: int) -> Ptr: ...
    def read(self, addr: int, size: int) -> bytes: ...
    def write(self, addr: int, data: Buffer) -> None: ...
    def read32(self, addr: int) -> int: ...
    def write32(self, addr: int, value: int) -> None: ...
    def peripheral_base(self, name: str) -> int: ...
    def wfi(self) -> None: ...


def _no_system(api: str) -> NoReturn:
    raise RuntimeError(
        f"{api}() called with no psaspm system running: the PSA API is for "
        "partition code, which runs inside system.boot() or a non-secure call"
    )


def _refusing(api: str) -> Any:
    def refuse(*_args: object, **_kwargs: object) -> NoReturn:
        _no_system(api)

    refuse.__name__ = api
    return refuse


def _no_system_interface() -> Interface:
    iface = Interface("none")
    for api in NAMES:
        setattr(iface, api, _refusing(api))
    return iface


class _NoHal:
    """The platform in force when no system runs: every access is refused."""

    def constants(self) -> Mapping[str, int]:
        _no_system("psaspm.hal.constants")

    def assert_irq(self, source: str | int) -> None:
        _no_system("psaspm.hal.assert_irq")

    def deassert_irq(self, source: str | int) -> None:
        _no_system("psaspm.hal.deassert_irq")

    def malloc(self, size: int) -> Ptr:
        _no_system("psaspm.hal.malloc")

    def read(self, addr: int, size: int) -> bytes:
        _no_system("psaspm.hal.read")

    def write(self, addr: int, data: Buffer) -> None:
        _no_system("psaspm.hal.write")

    def read32(self, addr: int) -> int:
        _no_system("psaspm.hal.read32")

    def write32(self, addr: int, value: int) -> None:
        _no_system("psaspm.hal.write32")

    def peripheral_base(self, name: str) -> int:
        _no_system("psaspm.hal.peripheral_base")

    def wfi(self) -> None:
        _no_system("psaspm.hal.wfi")


NO_SYSTEM: Interface = _no_system_interface()
NO_HAL: Hal = _NoHal()


class Door:
    """``iface``: the running system's interface; ``hal``: its platform."""

    __slots__ = ("hal", "iface")

    def __init__(self) -> None:
        self.iface: Interface = NO_SYSTEM
        self.hal: Hal = NO_HAL


DOOR = Door()
