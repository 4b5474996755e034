"""The platform as partition code sees it: device-side operations of the running system.

Drivers and FLIH functions use these to model their hardware, e.g. a timer
raising its interrupt line or a FLIH clearing it.  Like ``psaspm.psa`` they
act on the system whose secure code is running.
"""

from __future__ import annotations

from collections.abc import Mapping

from psaspm.kernel.door import DOOR


def constants() -> Mapping[str, int]:
    """The names TF-M generates into headers: ``<SVC>_SID``, ``<SVC>_SIGNAL``, IRQ signals..."""
    return DOOR.system.constants  # type: ignore[no-any-return]


def assert_irq(source: str | int) -> None:
    """Raise an interrupt line; an enabled source is taken where the caller may be preempted."""
    DOOR.system.assert_irq(source)


def deassert_irq(source: str | int) -> None:
    """Lower an interrupt line (lowering a low line is harmless)."""
    DOOR.system.deassert_irq(source)
