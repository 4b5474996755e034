"""The platform: its description file, device models, and the address space of a boot.

The description (YAML; psaspm ships ``data/platform.yaml``) gives the memory
map and the named peripherals that manifests' ``mmio_regions`` refer to.
Device models are deterministic: time advances only by ``system.tick(n)``, and
while the SPE waits for an armed device (``System`` then advances it to the
device's next event, as TF-M's idle thread sleeps in WFI).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from psaspm.errors import ConfigError
from psaspm.kernel.memory import AddressSpace, Kind, Region
from psaspm.manifest.model import Partition, Permission

Line = Callable[[str, bool], None]  # (interrupt source, level)


@dataclass(frozen=True)
class Peripheral:
    name: str
    base: int
    size: int
    device: str | None
    irq: str | None


@dataclass(frozen=True)
class PlatformDescription:
    path: str
    ns_ram: tuple[int, int]
    secure_ram: tuple[int, int]
    code: tuple[int, int]
    spm_data: int
    partition_data: int
    peripherals: Mapping[str, Peripheral]
    irqs: frozenset[str]


DEVICE_KINDS = ("timer", "uart")


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: {value!r} is not a non-negative integer")
    return value


def _range(raw: Any, where: str) -> tuple[int, int]:
    if not isinstance(raw, dict) or set(raw) != {"base", "size"}:
        raise ConfigError(f"{where}: expected {{base: ..., size: ...}}, got {raw!r}")
    return _int(raw["base"], f"{where}.base"), _int(raw["size"], f"{where}.size")


def load_platform(path: str | Path | None = None) -> PlatformDescription:
    """Read a platform description; every error names the file and the field."""
    if path is None:
        text = resources.files("psaspm").joinpath("data/platform.yaml").read_text("utf-8")
        where = "psaspm/data/platform.yaml"
    else:
        where = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the platform description: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a platform description is a mapping")
    unknown = set(raw) - {"memory", "peripherals", "irqs"}
    if unknown:
        raise ConfigError(f"{where}: unknown top-level keys {sorted(unknown)}")
    memory = raw.get("memory")
    if not isinstance(memory, dict):
        raise ConfigError(f"{where}: memory: missing or not a mapping")
    for key in ("ns_ram", "secure_ram", "code", "spm_data", "partition_data"):
        if key not in memory:
            raise ConfigError(f"{where}: memory.{key}: missing")
    peripherals: dict[str, Peripheral] = {}
    for name, spec in (raw.get("peripherals") or {}).items():
        field = f"{where}: peripherals.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{field}: expected a mapping")
        extra = set(spec) - {"base", "size", "device", "irq"}
        if extra:
            raise ConfigError(f"{field}: unknown keys {sorted(extra)}")
        base, size = _range({"base": spec.get("base"), "size": spec.get("size")}, field)
        device = spec.get("device")
        if device is not None and device not in DEVICE_KINDS:
            raise ConfigError(f"{field}.device: {device!r} is not one of {DEVICE_KINDS}")
        irq = spec.get("irq")
        if irq is not None and not isinstance(irq, str):
            raise ConfigError(f"{field}.irq: {irq!r} is not a source name")
        peripherals[str(name)] = Peripheral(str(name), base, size, device, irq)
    irqs = raw.get("irqs") or []
    if not isinstance(irqs, list) or not all(isinstance(i, str) for i in irqs):
        raise ConfigError(f"{where}: irqs: expected a list of source names")
    return PlatformDescription(
        path=where,
        ns_ram=_range(memory["ns_ram"], f"{where}: memory.ns_ram"),
        secure_ram=_range(memory["secure_ram"], f"{where}: memory.secure_ram"),
        code=_range(memory["code"], f"{where}: memory.code"),
        spm_data=_int(memory["spm_data"], f"{where}: memory.spm_data"),
        partition_data=_int(memory["partition_data"], f"{where}: memory.partition_data"),
        peripherals=peripherals,
        irqs=frozenset(irqs),
    )


# ------------------------------------------------------------------ devices
class Timer:
    """An Arm CMSDK-style down-counting timer.

    Registers: 0x0 CTRL (bit 0 enable, bit 3 interrupt enable), 0x4 VALUE,
    0x8 RELOAD, 0xC INTSTATUS (read) / INTCLEAR (write 1).  When enabled it
    counts down by one per tick; on reaching zero it sets INTSTATUS, raises
    its interrupt line if the interrupt is enabled, and reloads.
    """

    def __init__(self, irq: str | None, line: Line) -> None:
        self.irq = irq
        self.line = line
        self.ctrl = 0
        self.value = 0
        self.reload = 0
        self.status = 0

    def read32(self, offset: int) -> int:
        return {0x0: self.ctrl, 0x4: self.value, 0x8: self.reload, 0xC: self.status}.get(offset, 0)

    def write32(self, offset: int, value: int) -> None:
        if offset == 0x0:
            self.ctrl = value & 0xF
        elif offset == 0x4:
            self.value = value
        elif offset == 0x8:
            self.reload = value
        elif offset == 0xC and value & 1:
            self.status = 0
            self._drive()

    def tick(self, n: int) -> None:
        """Advance ``n`` ticks: as ``n`` single ticks, in steps from one zero to the next."""
        while n > 0 and self.ctrl & 1:
            step = max(self.value, 1)  # ticks until the count reaches zero (0 fires at once)
            if step > n:
                self.value -= n
                return
            n -= step
            self.status = 1
            self.value = self.reload
            self._drive()  # a handler taken here may reprogram the timer: re-read it
            if self.reload == 0 and self.ctrl & 1 and self.value == 0:
                return  # it would fire on every remaining tick: the line is already high

    def next_event(self) -> int | None:
        """Ticks until this timer next raises its interrupt line; None if it will not
        (stopped, its interrupt disabled, or no line)."""
        if self.irq is None or self.ctrl & 0x9 != 0x9:
            return None
        return max(self.value, 1)

    def _drive(self) -> None:
        if self.irq is not None:
            self.line(self.irq, bool(self.status and self.ctrl & 0x8))


class Uart:
    """A transmit-only UART: bytes written to DATA (0x0) collect in ``output``."""

    def __init__(self) -> None:
        self.output = bytearray()

    def read32(self, offset: int) -> int:
        return 0

    def write32(self, offset: int, value: int) -> None:
        if offset == 0x0:
            self.output.append(value & 0xFF)

    def tick(self, n: int) -> None:
        return None

    def next_event(self) -> int | None:
        return None


Devices = dict[str, Timer | Uart]


def build_address_space(
    platform: PlatformDescription,
    partitions: tuple[Partition, ...],
    domain_of: Mapping[str, int],
    ns_region: Region,
    line: Line,
) -> tuple[AddressSpace, Devices]:
    """Lay out one boot's memory: SPM data, each partition's data and stack, MMIO."""
    space = AddressSpace(lambda name: domain_of[name])
    space.add(ns_region)
    space.add(Region("CODE", platform.code[0], platform.code[1], Kind.CODE))
    base, size = platform.secure_ram
    end = base + size
    cursor = base

    def carve(name: str, length: int, kind: Kind, owner: str | None) -> Region:
        nonlocal cursor
        start = (cursor + 31) & ~31
        if start + length > end:
            raise ConfigError(
                f"{platform.path}: memory.secure_ram is too small for {name} "
                f"({length} bytes at {start:#x}; the secure RAM ends at {end:#x})"
            )
        cursor = start + length
        return space.add(Region(name, start, length, kind, owner))

    carve("SPM", platform.spm_data, Kind.SPM, None)
    data_regions = space.private
    for part in partitions:
        heap = part.heap_size if isinstance(part.heap_size, int) and part.heap_size > 0 else 0
        stack = part.stack_size if isinstance(part.stack_size, int) else 0x400
        data_regions[part.name] = carve(
            f"{part.name}.data", heap or platform.partition_data, Kind.DATA, part.name
        )
        carve(f"{part.name}.stack", stack, Kind.STACK, part.name)
    devices: Devices = {}
    mmio: dict[str, Region] = {}
    for part in partitions:
        for index, asset in enumerate(part.mmio_regions):
            if asset.name is not None:
                spec = platform.peripherals.get(asset.name)
                if spec is None:
                    known = ", ".join(sorted(platform.peripherals)) or "none"
                    raise ConfigError(
                        f"{part.manifest_path}: partition {part.name}: mmio_regions[{index}].name: "
                        f"{asset.name!r} is not a peripheral of {platform.path} (known: {known})"
                    )
                key, p_base, p_size = asset.name, spec.base, spec.size
            else:
                assert asset.base is not None and asset.size is not None
                key, p_base, p_size = f"MMIO@{asset.base:#x}", asset.base, asset.size
                spec = None
            region = mmio.get(key)
            if region is None:
                device: Timer | Uart | None = None
                if spec is not None and spec.device == "timer":
                    device = Timer(spec.irq, line)
                elif spec is not None and spec.device == "uart":
                    device = Uart()
                region = Region(key, p_base, p_size, Kind.MMIO, device=device)
                try:
                    space.add(region)
                except ValueError as exc:
                    raise ConfigError(
                        f"{part.manifest_path}: partition {part.name}: mmio_regions[{index}]: {exc}"
                    ) from exc
                mmio[key] = region
                if device is not None:
                    devices[key] = device
            writable = asset.permission is Permission.READ_WRITE
            region.users[part.name] = region.users.get(part.name, False) or writable
    return space, devices
