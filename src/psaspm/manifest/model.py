"""Typed, frozen records of a loaded system manifest, with every default applied.

These are the only shape in which manifests reach the rest of psaspm: the
kernel never sees a YAML dict.  Values follow TF-M 2.3's manifest tool.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class Model(enum.Enum):
    """A partition's effective programming model (``dual`` already resolved)."""

    IPC = "IPC"
    SFN = "SFN"


class PartitionType(enum.Enum):
    PSA_ROT = "PSA-ROT"
    APPLICATION_ROT = "APPLICATION-ROT"


class Priority(enum.IntEnum):
    """Thread priorities with TF-M's flag values; a smaller value runs first."""

    HIGHEST = 0x00
    HIGH = 0x0F
    NORMAL = 0x1F
    LOW = 0x7F
    LOWEST = 0xFF


class VersionPolicy(enum.Enum):
    STRICT = "STRICT"
    RELAXED = "RELAXED"


class Handling(enum.Enum):
    FLIH = "FLIH"
    SLIH = "SLIH"


class Permission(enum.Enum):
    READ_WRITE = "READ-WRITE"
    READ_ONLY = "READ-ONLY"


@dataclass(frozen=True)
class Service:
    name: str
    sid: int
    version: int
    version_policy: VersionPolicy
    non_secure_clients: bool
    connection_based: bool
    mm_iovec: bool
    signal: int
    stateless_slot: int | None  # 0..31 when stateless, else None
    stateless_handle: int | None  # (1 << 30) | ((version & 0xFF) << 8) | slot, else None

    @property
    def sfn_function(self) -> str:
        """The name of its service function, as TF-M generates it: ``<name>_sfn``."""
        return self.name.lower() + "_sfn"


@dataclass(frozen=True)
class Irq:
    source: str | int  # symbol name or exception number
    name: str  # the signal macro: "<name>_SIGNAL" (FF-M 1.1) or the 1.0 ``signal`` value
    signal: int
    handling: Handling
    client_id_base: int | None = None
    client_id_limit: int | None = None

    @property
    def flih_function(self) -> str:
        """The name of its FLIH function, as TF-M generates it: ``<name>_flih``, the
        ``_SIGNAL`` suffix dropped."""
        return self.name.removesuffix("_SIGNAL").lower() + "_flih"


@dataclass(frozen=True)
class MmioRegion:
    permission: Permission
    name: str | None = None  # a named region (resolved through the platform description)
    base: int | None = None  # a numbered region
    size: int | None = None


@dataclass(frozen=True)
class Partition:
    name: str
    pid: int
    manifest_path: Path
    psa_framework_version: str  # "1.0" or "1.1"
    model: Model
    declared_model: str  # as written: "IPC", "SFN", "dual" (or "IPC" for FF-M 1.0)
    type: PartitionType
    priority: Priority
    entry_point: str | None
    entry_init: str | None
    stack_size: int | str  # a number, or a C macro name kept verbatim
    heap_size: int | str
    services: tuple[Service, ...]
    irqs: tuple[Irq, ...]
    mmio_regions: tuple[MmioRegion, ...]
    dependencies: tuple[str, ...]  # service names
    weak_dependencies: tuple[str, ...]
    ns_agent: bool
    client_id_base: int | None
    client_id_limit: int | None
    place_in_dtcm: bool
    load_order: int
    description: str | None = None
    # Strong dependencies on services of partitions that a conditional disabled:
    # psaspm ignores them (as TF-M does) instead of rejecting them as unknown.
    ignored_dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigImpl:
    """The ``config_impl.h`` switches TF-M's tool derives from the enabled partitions."""

    connection_based_service_api: bool
    flih_api: bool
    slih_api: bool
    mmio_region_enable: bool
    arot_present: bool


@dataclass(frozen=True)
class SystemManifest:
    """Every enabled partition, in pid.h order (manifest-list order).

    ``disabled_partitions`` names the partitions a conditional switched off
    (when their manifests could be read), so that code given for them is
    ignored rather than refused.  ``warnings`` are problems that do not stop
    psaspm but would break the same system on TF-M; the CLI prints them.
    """

    backend: str  # "ipc" | "sfn"
    isolation: int  # 1 | 2 | 3
    partitions: tuple[Partition, ...]
    config_impl: ConfigImpl
    disabled_partitions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
