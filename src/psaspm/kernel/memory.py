"""The modelled address space and TF-M's isolation boundaries over it.

Regions: non-secure RAM, the SPM's data, each partition's private data and
stack, a shared read-only code region, and MMIO regions from the platform
description.  Who may touch what follows TF-M's isolation levels:

- every secure partition is privileged at level 1; at levels 2 and 3 PSA-RoT
  partitions are privileged and App-RoT ones are not;
- privileged code may access all memory (secure and non-secure);
- unprivileged code may read the shared code region, access its MMIO regions
  with the manifest's permission, and the private data and stacks of its own
  domain: every App-RoT partition at level 2, itself alone at level 3.
  psaspm is stricter than TF-M's reference platforms in one point: an
  unprivileged partition may not touch non-secure memory directly;
- the non-secure side reaches non-secure memory only.

A denied access by partition code is a modelled MemManage fault (a panic);
a denied vector in a client call is a programmer error.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Callable
from typing import Protocol

# Boundary words (what TF-M's HAL binds per partition): bit 0 = privileged; the
# rest names the protection domain.
PRIVILEGED = 1


def boundary_need_switch(from_boundary: int, to_boundary: int) -> bool:
    """TF-M's reference HAL: no switch between equal or between privileged boundaries."""
    return from_boundary != to_boundary and not (from_boundary & to_boundary & PRIVILEGED)


class Kind(enum.Enum):
    NS = "non-secure RAM"
    SPM = "SPM data"
    DATA = "private data"
    STACK = "stack"
    CODE = "code"
    MMIO = "MMIO"


class Device(Protocol):
    """A peripheral behind an MMIO region: 32-bit register reads and writes."""

    def read32(self, offset: int) -> int: ...
    def write32(self, offset: int, value: int) -> None: ...


class Region:
    __slots__ = ("base", "data", "device", "end", "kind", "name", "next_free", "owner", "users")

    def __init__(
        self,
        name: str,
        base: int,
        size: int,
        kind: Kind,
        owner: str | None = None,
        device: Device | None = None,
    ) -> None:
        self.name = name
        self.base = base
        self.end = base + size
        self.kind = kind
        self.owner = owner  # the partition whose private data or stack this is
        self.users: dict[str, bool] = {}  # MMIO: partition name -> may write
        self.device = device
        self.data = bytearray(size) if device is None else bytearray()
        self.next_free = base  # bump allocator for data and NS regions

    @property
    def size(self) -> int:
        return self.end - self.base

    def describe(self) -> str:
        whose = f" of {self.owner}" if self.owner else ""
        return f"{self.name} ({self.kind.value}{whose}, {self.base:#010x}..{self.end - 1:#010x})"


class Subject:
    """Who accesses memory: a partition's boundary, or the non-secure side."""

    __slots__ = ("domain", "name", "ns", "privileged")

    def __init__(self, name: str, ns: bool, privileged: bool, domain: int) -> None:
        self.name = name
        self.ns = ns
        self.privileged = privileged
        self.domain = domain  # the boundary word of the partition


class Ptr:
    """A raw pointer vector ``(addr, len)``, as ``psa_invec``/``psa_outvec`` in C.

    As an out-vector, ``len`` is the capacity on entry and the number of bytes
    the service wrote on return.
    """

    __slots__ = ("addr", "len")

    def __init__(self, addr: int, length: int) -> None:
        self.addr = addr
        self.len = length

    def __repr__(self) -> str:
        return f"Ptr({self.addr:#010x}, {self.len})"


def allocate(region: Region, size: int) -> Ptr:
    """``size`` bytes from a region's bump allocator, 8-byte aligned (never freed)."""
    if size.__class__ is not int or size < 0:
        raise ValueError(f"cannot allocate {size!r} bytes")
    start = (region.next_free + 7) & ~7
    if start + size > region.end:
        raise MemoryError(
            f"{region.describe()} has {max(region.end - start, 0)} bytes left, {size} requested"
        )
    region.next_free = start + size
    return Ptr(start, size)


def span(addr: int | Ptr, size: int | None) -> tuple[int, int]:
    """``(address, size)`` from a pointer (its length unless ``size`` is given) or an address."""
    if isinstance(addr, Ptr):
        return addr.addr, addr.len if size is None else size
    if size is None:
        raise ValueError("a plain address needs a size")
    return addr, size


class MemoryFault(Exception):
    """An access the accessor's boundary forbids (the modelled MemManage fault), or one
    the bus refuses (``fault == "BusFault"``: an unaligned or byte access to registers)."""

    def __init__(
        self,
        subject: Subject,
        addr: int,
        size: int,
        write: bool,
        why: str,
        fault: str = "MemManage",
    ) -> None:
        kind = "write" if write else "read"
        super().__init__(f"{kind} of {size} bytes at {addr:#010x} by {subject.name}: {why}")
        self.addr = addr
        self.fault = fault


def _bus_fault(subject: Subject, addr: int, size: int, write: bool, why: str) -> MemoryFault:
    return MemoryFault(subject, addr, size, write, why, "BusFault")


class AddressSpace:
    """One boot's memory map, its access policy, and accesses made under that policy."""

    def __init__(self, domain_of: Callable[[str], int]) -> None:
        self.regions: list[Region] = []
        self._bases: list[int] = []
        self._domain_of = domain_of  # partition name -> boundary word
        self.private: dict[str, Region] = {}  # partition name -> its private data

    def add(self, region: Region) -> Region:
        index = bisect.bisect(self._bases, region.base)
        before = self.regions[index - 1] if index else None
        after = self.regions[index] if index < len(self.regions) else None
        if (before is not None and before.end > region.base) or (
            after is not None and region.end > after.base
        ):
            raise ValueError(f"region {region.name} overlaps another region")
        self.regions.insert(index, region)
        self._bases.insert(index, region.base)
        return region

    def find(self, addr: int, size: int) -> Region | None:
        """The region holding ``[addr, addr + size)`` entirely, if one does."""
        index = bisect.bisect(self._bases, addr) - 1
        if index < 0:
            return None
        region = self.regions[index]
        if addr + max(size, 1) > region.end:
            return None
        return region

    def allocate_private(self, owner: str, size: int) -> Ptr:
        """``size`` bytes of ``owner``'s private data (never freed)."""
        region = self.private.get(owner)
        if region is None:
            raise RuntimeError("only a secure partition has private data to allocate from")
        return allocate(region, size)

    # ------------------------------------------------------------ accesses
    # Accesses made by ``subject`` under the policy below; a forbidden one raises
    # MemoryFault (the caller turns it into the modelled fault of the running code).
    def read(self, subject: Subject, addr: int, size: int) -> bytes:
        region = self.check(subject, addr, size, write=False)
        if region.device is not None:
            raise _bus_fault(subject, addr, size, False, "device registers need 32-bit accesses")
        offset = addr - region.base
        return bytes(region.data[offset : offset + size])

    def write(self, subject: Subject, addr: int, data: bytes | bytearray | memoryview) -> None:
        size = memoryview(data).nbytes
        region = self.check(subject, addr, size, write=True)
        if region.device is not None:
            raise _bus_fault(subject, addr, size, True, "device registers need 32-bit accesses")
        offset = addr - region.base
        region.data[offset : offset + size] = data

    def read32(self, subject: Subject, addr: int) -> int:
        region = self.check(subject, addr, 4, write=False)
        if addr & 3:
            raise _bus_fault(subject, addr, 4, False, "unaligned 32-bit read")
        if region.device is not None:
            return region.device.read32(addr - region.base) & 0xFFFFFFFF
        offset = addr - region.base
        return int.from_bytes(region.data[offset : offset + 4], "little")

    def write32(self, subject: Subject, addr: int, value: int) -> None:
        region = self.check(subject, addr, 4, write=True)
        if addr & 3:
            raise _bus_fault(subject, addr, 4, True, "unaligned 32-bit write")
        if region.device is not None:
            region.device.write32(addr - region.base, value & 0xFFFFFFFF)
        else:
            offset = addr - region.base
            region.data[offset : offset + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")

    # ------------------------------------------------------------ policy
    def check(self, subject: Subject, addr: int, size: int, write: bool) -> Region:
        """The region an access lands in; raise :class:`MemoryFault` if it is forbidden."""
        if addr.__class__ is not int or size.__class__ is not int or size < 0 or addr <= 0:
            raise MemoryFault(
                subject, int(addr) if isinstance(addr, int) else 0, 0, write, "not an address range"
            )
        region = self.find(addr, size)
        if region is None:
            raise MemoryFault(subject, addr, size, write, "no memory there (or it spans regions)")
        why = self.denied(subject, region, write)
        if why:
            raise MemoryFault(subject, addr, size, write, f"{region.describe()}: {why}")
        return region

    def denied(self, subject: Subject, region: Region, write: bool) -> str:
        """Why ``subject`` may not access ``region`` (empty when it may)."""
        kind = region.kind
        if write and kind is Kind.CODE:
            return "code is read-only"
        if subject.ns:
            return (
                ""
                if kind is Kind.NS
                else "secure memory is not accessible from the non-secure side"
            )
        if kind is Kind.MMIO:
            users = region.users
            if subject.name in users:
                return "" if users[subject.name] or not write else "mapped READ-ONLY for it"
            return "" if subject.privileged else "not among its mmio_regions"
        if subject.privileged:
            return ""
        if kind is Kind.CODE:
            return ""
        if kind is Kind.NS:
            return "unprivileged partitions may not touch non-secure memory (psaspm is stricter)"
        if kind is Kind.SPM:
            return "SPM memory is privileged"
        owner = region.owner
        assert owner is not None
        if self._domain_of(owner) == subject.domain:
            return ""
        return f"it belongs to {owner}, outside this partition's isolation boundary"

    def view(self, region: Region, addr: int, size: int) -> memoryview:
        """A view of plain memory (not device registers)."""
        offset = addr - region.base
        return memoryview(region.data)[offset : offset + size]
