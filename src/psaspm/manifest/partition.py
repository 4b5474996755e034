"""One partition manifest (a raw YAML mapping) -> a validated, frozen PartitionDraft.

A draft has everything a partition record has except what needs the whole
system: its pid, its services' stateless slots and its load order.  Signals
are per-partition, so they are assigned here (rules doc section 3.2).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from psaspm.manifest.model import (
    Handling,
    Irq,
    MmioRegion,
    Model,
    PartitionType,
    Permission,
    Priority,
    VersionPolicy,
)
from psaspm.manifest.problems import STRICTER, Problems, Where
from psaspm.manifest.values import (
    UINT32_MAX,
    c_int,
    client_id,
    int_or_literal,
    is_identifier,
    is_int,
)

FFM_ATTRIBUTES = frozenset(
    {
        "psa_framework_version",
        "name",
        "type",
        "priority",
        "model",
        "entry_point",
        "stack_size",
        "description",
        "entry_init",
        "heap_size",
        "mmio_regions",
        "services",
        "irqs",
        "dependencies",
        "client_id_base",
        "client_id_limit",
    }
)
SERVICE_ATTRIBUTES = frozenset(
    {
        "name",
        "sid",
        "non_secure_clients",
        "description",
        "version",
        "version_policy",
        "connection_based",
        "stateless_handle",
        "mm_iovec",
    }
)
IRQ_ATTRIBUTES = frozenset(
    {"source", "signal", "name", "handling", "description", "client_id_base", "client_id_limit"}
)
MMIO_ATTRIBUTES = frozenset({"name", "base", "size", "permission"})

MAX_SIGNALS = 28  # services + IRQs per partition
MAX_STATELESS_HANDLE = 32
MANIFEST_PRIORITIES = {"HIGH": Priority.HIGH, "NORMAL": Priority.NORMAL, "LOW": Priority.LOW}

E = TypeVar("E", bound=enum.Enum)


@dataclass(frozen=True)
class ServiceDraft:
    name: str
    sid: int
    sid_raw: object  # as written, for TF-M's raw-value duplicate check
    version: int
    version_policy: VersionPolicy
    non_secure_clients: bool
    connection_based: bool
    mm_iovec: bool
    signal: int
    stateless_request: int | None  # an explicit stateless_handle (1..32); None for auto


@dataclass(frozen=True)
class PartitionDraft:
    name: str
    path: Path
    psa_framework_version: str
    model: Model
    declared_model: str
    type: PartitionType
    priority: Priority
    entry_point: str | None
    entry_init: str | None
    stack_size: int | str
    heap_size: int | str
    services: tuple[ServiceDraft, ...]
    irqs: tuple[Irq, ...]
    mmio_regions: tuple[MmioRegion, ...]
    dependencies: tuple[str, ...]
    weak_dependencies: tuple[str, ...]
    ns_agent: bool
    client_id_base: int | None
    client_id_limit: int | None
    place_in_dtcm: bool
    description: str | None


class _Fields:
    """Field readers over one mapping; each reports what is wrong and returns a fallback."""

    def __init__(self, data: dict[object, object], where: Where, prefix: str, problems: Problems):
        self.data = data
        self.where = where
        self.prefix = prefix
        self.problems = problems

    def field(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def bad(self, key: str, detail: str) -> None:
        self.problems.at(self.where, self.field(key), detail)

    def required(self, key: str) -> object:
        if key not in self.data:
            self.bad(key, "missing (required)")
        return self.data.get(key)

    def identifier(self, key: str, *, required: bool) -> str | None:
        value = self.required(key) if required else self.data.get(key)
        if value is None:
            return None
        if not is_identifier(value):
            self.bad(key, f"{value!r} is not a C identifier")
            return None
        assert isinstance(value, str)
        return value

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            self.bad(key, f"{value!r} is not text")
            return None
        return value

    def boolean(self, key: str, default: bool, *, stricter: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            note = f" ({STRICTER})" if stricter else ""
            self.bad(key, f"{value!r} is not true or false{note}")
            return default
        return value

    def choice(self, key: str, options: dict[str, E], detail: str) -> E | None:
        value = self.required(key)
        if value is None:
            return None
        if not isinstance(value, str) or value not in options:
            self.bad(key, f"{value!r} {detail}")
            return None
        return options[value]

    def size(self, key: str, *, required: bool) -> int | str | None:
        value = self.required(key) if required else self.data.get(key, 0)
        if value is None:
            return None
        if is_int(value) and value >= 0:
            return value
        if isinstance(value, str):
            number = c_int(value)
            if number is not None and number >= 0:
                return number
            if is_identifier(value):
                return value  # a C macro, kept verbatim as TF-M emits it
        self.bad(key, f"{value!r} is not a size (a number or a C macro name)")
        return None

    def names(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if value is None:
            value = []
        if not isinstance(value, list) or not all(is_identifier(v) for v in value):
            self.bad(key, f"{value!r} is not a list of service names")
            return ()
        return tuple(str(v) for v in value)

    def objects(self, key: str) -> list[dict[object, object]]:
        value = self.data.get(key, [])
        if value is None:
            value = []
        if not isinstance(value, list):
            self.bad(key, f"{value!r} is not a list")
            return []
        good: list[dict[object, object]] = []
        for index, item in enumerate(value):
            if isinstance(item, dict):
                good.append(item)
            else:
                self.problems.at(self.where, f"{key}[{index}]", f"{item!r} is not a mapping")
        return good

    def client_id(self, key: str) -> int | None:
        if key not in self.data:
            return None
        value = self.data[key]
        number = client_id(value)
        if number is None:
            self.bad(key, f"Client ID ({value!r}) is not a 32-bit negative integer")
        return number

    def only(self, allowed: frozenset[str], what: str, name: str) -> None:
        for key in self.data:
            if key not in allowed:
                self.problems.at(
                    self.where,
                    self.prefix.rstrip("."),
                    f'Invalid attribute "{key}" used by "{name}" in "{what}"',
                )

    def sub(self, key: str, index: int, data: dict[object, object]) -> _Fields:
        return _Fields(data, self.where, f"{key}[{index}].", self.problems)


def parse_partition(
    path: Path,
    document: object,
    non_ffm: frozenset[str],
    backend: str,
    problems: Problems,
) -> PartitionDraft | None:
    """The draft of one partition, or None (with the reasons added to ``problems``)."""
    where = Where(path)
    if not isinstance(document, dict):
        problems.at(where, "", f"a partition manifest must be a mapping, not {document!r:.60}")
        return None
    raw_name = document.get("name")
    where = where.named(raw_name if isinstance(raw_name, str) else None)
    local = Problems()
    draft = _parse(_Fields(document, where, "", local), non_ffm, backend, path)
    problems.extend(local)
    return draft if len(local) == 0 else None


def _parse(f: _Fields, non_ffm: frozenset[str], backend: str, path: Path) -> PartitionDraft | None:
    name = f.identifier("name", required=True) or "?"
    _check_top_level_keys(f, non_ffm, name)
    version = _framework_version(f, name)
    declared, model = _model(f, version, backend, name)
    entry_point, entry_init = _entries(f, model, name)
    services = _services(f, version, model, name)
    irqs = _irqs(f, version, name)
    _check_signal_count(f, name)
    _check_irq_uniqueness(f, services, irqs)
    ptype = f.choice(
        "type",
        {t.value: t for t in PartitionType},
        f"is not PSA-ROT or APPLICATION-ROT (Invalid type of {name})",
    )
    priority = f.choice(
        "priority", MANIFEST_PRIORITIES, f"is not HIGH, NORMAL or LOW (Invalid priority of {name})"
    )
    stack_size = f.size("stack_size", required=True)
    heap_size = f.size("heap_size", required=False)
    mmio = _mmio_regions(f, name)
    deps, weak = f.names("dependencies"), f.names("weak_dependencies")
    ns_agent = f.boolean("ns_agent", False)
    place_in_dtcm = f.boolean("place_in_dtcm", False)
    base, limit = f.client_id("client_id_base"), f.client_id("client_id_limit")
    description = f.text("description")
    if (
        version is None
        or model is None
        or ptype is None
        or priority is None
        or stack_size is None
        or heap_size is None
    ):
        return None
    return PartitionDraft(
        name=name,
        path=path,
        psa_framework_version=version,
        model=model,
        declared_model=declared,
        type=ptype,
        priority=priority,
        entry_point=entry_point,
        entry_init=entry_init,
        stack_size=stack_size,
        heap_size=heap_size,
        services=services,
        irqs=irqs,
        mmio_regions=mmio,
        dependencies=deps,
        weak_dependencies=weak,
        ns_agent=ns_agent,
        client_id_base=base,
        client_id_limit=limit,
        place_in_dtcm=place_in_dtcm,
        description=description,
    )


def _check_top_level_keys(f: _Fields, non_ffm: frozenset[str], name: str) -> None:
    for key in f.data:
        if not isinstance(key, str):
            f.problems.at(f.where, repr(key), "an attribute name must be text")
        elif key not in FFM_ATTRIBUTES and key not in non_ffm:
            f.bad(
                key,
                f'The Non-FFM attribute "{key}" is used by "{name}" without registration '
                "(list it in the manifest list item's non_ffm_attributes)",
            )


def _framework_version(f: _Fields, name: str) -> str | None:
    value = f.required("psa_framework_version")
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 1.0:
            return "1.0"
        if value == 1.1:
            return "1.1"
    f.bad(
        "psa_framework_version",
        f"{value!r} is not the number 1.0 or 1.1 (Invalid psa_framework_version of {name})",
    )
    return None


def _model(f: _Fields, version: str | None, backend: str, name: str) -> tuple[str, Model | None]:
    if version == "1.0":
        return "IPC", Model.IPC  # FF-M 1.0 has no model: always IPC
    if "model" not in f.data:
        f.bad("model", f'{name} is missing the "model" attribute')
        return "", None
    declared = f.data["model"]
    if declared == "dual":
        return "dual", Model(backend.upper())
    if declared in ("IPC", "SFN"):
        assert isinstance(declared, str)
        return declared, Model(declared)
    f.bad("model", f'{declared!r} is not IPC, SFN or dual (Invalid "model" of {name})')
    return str(declared), None


def _entries(f: _Fields, model: Model | None, name: str) -> tuple[str | None, str | None]:
    entry_point = f.identifier("entry_point", required=False)
    entry_init = f.identifier("entry_init", required=False)
    if model is Model.IPC and "entry_point" not in f.data:
        f.bad("entry_point", f'{name} is missing the "entry_point" attribute')
    return entry_point, entry_init


def _services(
    f: _Fields, version: str | None, model: Model | None, name: str
) -> tuple[ServiceDraft, ...]:
    drafts: list[ServiceDraft] = []
    for index, data in enumerate(f.objects("services")):
        signal = 1 << index if model is Model.SFN else 1 << (index + 4)
        draft = _service(f.sub("services", index, data), version, signal, name)
        if draft is not None:
            drafts.append(draft)
    return tuple(drafts)


def _service(s: _Fields, version: str | None, signal: int, partition: str) -> ServiceDraft | None:
    s.only(SERVICE_ATTRIBUTES, "services", partition)
    name = s.identifier("name", required=True)
    sid = _sid(s)
    connection_based = _connection_based(s, version)
    request = _stateless_request(s, version, connection_based)
    service_version = _service_version(s, stateless=version == "1.1" and connection_based is False)
    policy = _optional_choice(s, "version_policy", VersionPolicy, VersionPolicy.STRICT)
    mm_iovec = _mm_iovec(s)
    non_secure = s.boolean("non_secure_clients", False, stricter=True)
    s.text("description")
    if name is None or sid is None or connection_based is None or request is False:
        return None
    if service_version is None or policy is None or mm_iovec is None:
        return None
    return ServiceDraft(
        name=name,
        sid=sid,
        sid_raw=s.data["sid"],
        version=service_version,
        version_policy=policy,
        non_secure_clients=non_secure,
        connection_based=connection_based,
        mm_iovec=mm_iovec,
        signal=signal,
        stateless_request=request if is_int(request) else None,
    )


def _sid(s: _Fields) -> int | None:
    raw = s.required("sid")
    if raw is None:
        return None
    sid = int_or_literal(raw)
    if sid is None or not 0 <= sid <= UINT32_MAX:
        s.bad("sid", f"{raw!r} is not a 32-bit service ID (a number or a hex string)")
        return None
    return sid


def _connection_based(s: _Fields, version: str | None) -> bool | None:
    if version == "1.0":
        return True  # FF-M 1.0: every service is connection-based, whatever it says
    if "connection_based" not in s.data:
        s.bad("connection_based", "'connection_based' is mandatory in FF-M 1.1 service!")
        return None
    value = s.data["connection_based"]
    if not isinstance(value, bool):
        s.bad("connection_based", f"{value!r} is not true or false ({STRICTER})")
        return None
    return value


def _stateless_request(s: _Fields, version: str | None, connection_based: bool | None) -> object:
    """The explicit slot request (int), None for auto, False when invalid."""
    if version != "1.1" or connection_based is not False:
        return None  # TF-M ignores stateless_handle for these
    value = s.data.get("stateless_handle", "auto")
    if value == "auto":
        return None
    if is_int(value) and 1 <= value <= MAX_STATELESS_HANDLE:
        return value
    s.bad(
        "stateless_handle",
        f'Invalid stateless_handle setting: {value!r} (an int 1..32 or "auto")',
    )
    return False


def _service_version(s: _Fields, *, stateless: bool) -> int | None:
    """A service version is a 32-bit value (FF-M's ``uint32_t``), at least 1 (0 is
    PSA_VERSION_NONE; TF-M checks no range at all, so psaspm is stricter there).  A
    stateless service's version also goes into its handle's 8-bit field, where TF-M
    keeps only the low 8 bits: there psaspm refuses anything above 255."""
    value = s.data.get("version", 1)
    if stateless:
        if not is_int(value) or not 1 <= value <= 255:
            s.bad(
                "version",
                f"{value!r} is not an integer 1..255 ({STRICTER}: the version of a stateless "
                "service goes into its handle, where TF-M keeps only the low 8 bits)",
            )
            return None
        return value
    if not is_int(value) or not 1 <= value <= UINT32_MAX:
        s.bad("version", f"{value!r} is not a 32-bit version 1..0xFFFFFFFF ({STRICTER})")
        return None
    return value


def _optional_choice(s: _Fields, key: str, kind: type[E], default: E) -> E | None:
    value = s.data.get(key, default.value)
    options = {member.value: member for member in kind}
    if not isinstance(value, str) or value not in options:
        allowed = " or ".join(options)
        s.bad(key, f"{value!r} is not {allowed} ({STRICTER})")
        return None
    return options[value]


def _mm_iovec(s: _Fields) -> bool | None:
    value = s.data.get("mm_iovec", "disable")
    if value not in ("enable", "disable"):
        s.bad("mm_iovec", f'{value!r} is not "enable" or "disable" ({STRICTER})')
        return None
    return value == "enable"


def _irqs(f: _Fields, version: str | None, name: str) -> tuple[Irq, ...]:
    irqs: list[Irq] = []
    for index, data in enumerate(f.objects("irqs")):
        irq = _irq(f.sub("irqs", index, data), version, 1 << (31 - index), name)
        if irq is not None:
            irqs.append(irq)
    return tuple(irqs)


def _irq(q: _Fields, version: str | None, signal: int, partition: str) -> Irq | None:
    q.only(IRQ_ATTRIBUTES, "irqs", partition)
    source = _irq_source(q)
    if version == "1.0":
        macro = q.identifier("signal", required=True)
    else:
        base_name = q.identifier("name", required=True)
        macro = f"{base_name}_SIGNAL" if base_name is not None else None
    handling = _handling(q, version)
    base, limit = q.client_id("client_id_base"), q.client_id("client_id_limit")
    q.text("description")
    if source is None or macro is None or handling is None:
        return None
    return Irq(source, macro, signal, handling, base, limit)


def _irq_source(q: _Fields) -> str | int | None:
    value = q.required("source")
    if value is None:
        return None
    if is_int(value) and value >= 0:
        return value
    if is_identifier(value):
        assert isinstance(value, str)
        return value
    q.bad("source", f"{value!r} is not an interrupt number or a symbol")
    return None


def _handling(q: _Fields, version: str | None) -> Handling | None:
    value = q.data.get("handling", "SLIH")
    if value not in ("FLIH", "SLIH"):
        q.bad("handling", f"{value!r} is not FLIH or SLIH ({STRICTER})")
        return None
    if version == "1.0" and value == "FLIH":
        q.bad("handling", f"FLIH in an FF-M 1.0 partition, where IRQs are always SLIH ({STRICTER})")
        return None
    return Handling(value)


def _check_signal_count(f: _Fields, name: str) -> None:
    total = _count(f, "services") + _count(f, "irqs")
    if total > MAX_SIGNALS:
        f.bad(
            "services",
            f"Total number of Services and IRQs of {name} exceeds the limit ({MAX_SIGNALS}): "
            f"{total}",
        )


def _count(f: _Fields, key: str) -> int:
    value = f.data.get(key)
    return len(value) if isinstance(value, list) else 0


def _check_irq_uniqueness(
    f: _Fields, services: tuple[ServiceDraft, ...], irqs: tuple[Irq, ...]
) -> None:
    """Within one partition, no IRQ source twice and no signal macro twice (stricter)."""
    macros = {f"{s.name}_SIGNAL": f"services {s.name}" for s in services}
    sources: dict[str | int, int] = {}
    for index, irq in enumerate(irqs):
        if irq.source in sources:
            f.bad(
                f"irqs[{index}].source",
                f"{irq.source!r} is already bound by irqs[{sources[irq.source]}] ({STRICTER})",
            )
        sources.setdefault(irq.source, index)
        if irq.name in macros:
            f.bad(
                f"irqs[{index}]",
                f"signal {irq.name} is already defined by {macros[irq.name]} ({STRICTER})",
            )
        macros.setdefault(irq.name, f"irqs[{index}]")


def _mmio_regions(f: _Fields, name: str) -> tuple[MmioRegion, ...]:
    regions: list[MmioRegion] = []
    for index, data in enumerate(f.objects("mmio_regions")):
        region = _mmio_region(f.sub("mmio_regions", index, data), name)
        if region is not None:
            regions.append(region)
    return tuple(regions)


def _mmio_region(m: _Fields, partition: str) -> MmioRegion | None:
    m.only(MMIO_ATTRIBUTES, "mmio_regions", partition)
    permission = m.choice(
        "permission",
        {p.value: p for p in Permission},
        f"is not READ-WRITE or READ-ONLY ({STRICTER})",
    )
    if "name" in m.data:
        region_name = m.identifier("name", required=True)
        if permission is None or region_name is None:
            return None
        return MmioRegion(permission, name=region_name)
    base, size = _number(m, "base"), _number(m, "size")
    if permission is None or base is None or size is None:
        return None
    return MmioRegion(permission, base=base, size=size)


def _number(m: _Fields, key: str) -> int | None:
    raw = m.required(key)
    if raw is None:
        return None
    value = int_or_literal(raw)
    if value is None or value < 0:
        m.bad(key, f"{raw!r} is not a non-negative number")
    return value if value is not None and value >= 0 else None
