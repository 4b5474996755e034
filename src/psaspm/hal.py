"""The platform as partition code sees it: device-side operations of the running system.

Drivers and FLIH functions use these to model their hardware, e.g. a timer
raising its interrupt line or a FLIH clearing it.  Like ``psaspm.psa`` they
go through the door and act on the system whose secure code is running, as
the running partition: a forbidden access is that partition's modelled fault.
"""

from __future__ import annotations

from collections.abc import Mapping

from psaspm.kernel.door import DOOR
from psaspm.kernel.memory import Ptr, span
from psaspm.kernel.objects import Buffer


def constants() -> Mapping[str, int]:
    """The names TF-M generates into headers: ``<SVC>_SID``, ``<SVC>_SIGNAL``, IRQ signals..."""
    return DOOR.hal.constants()


def assert_irq(source: str | int) -> None:
    """Raise an interrupt line; an enabled source is taken where the caller may be preempted."""
    DOOR.hal.assert_irq(source)


def deassert_irq(source: str | int) -> None:
    """Lower an interrupt line (lowering a low line is harmless)."""
    DOOR.hal.deassert_irq(source)


def malloc(size: int) -> Ptr:
    """Allocate ``size`` bytes in the running partition's private data (never freed)."""
    return DOOR.hal.malloc(size)


def read(addr: int | Ptr, size: int | None = None) -> bytes:
    """Read memory as the running partition: a forbidden address is a MemManage fault, a
    byte or unaligned access to device registers a BusFault."""
    return DOOR.hal.read(*span(addr, size))


def write(addr: int | Ptr, data: Buffer) -> None:
    """Write memory as the running partition: a forbidden address is a MemManage fault, a
    byte or unaligned access to device registers a BusFault."""
    DOOR.hal.write(addr.addr if isinstance(addr, Ptr) else addr, data)


def read32(addr: int) -> int:
    """A 32-bit read: device registers (MMIO) are read this way."""
    return DOOR.hal.read32(addr)


def write32(addr: int, value: int) -> None:
    """A 32-bit write: device registers (MMIO) are written this way."""
    DOOR.hal.write32(addr, value)


def peripheral_base(name: str) -> int:
    """The base address of a named peripheral (as TF-M's platform headers give it)."""
    return DOOR.hal.peripheral_base(name)


def wfi() -> None:
    """Wait for an interrupt (``__WFI()``): platform time advances to the next event of
    an armed device model and its interrupt is taken; with none armed, a deadlock."""
    DOOR.hal.wfi()
