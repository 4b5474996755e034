"""Whole-system assignments and checks: PIDs, SIDs, stateless handles, dependencies,
load order, NS-agent client IDs and config_impl (rules doc sections 2.3 and 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from psaspm.errors import ConfigError
from psaspm.manifest.model import (
    ConfigImpl,
    Handling,
    Model,
    Partition,
    PartitionType,
    Service,
    SystemManifest,
)
from psaspm.manifest.partition import MAX_STATELESS_HANDLE, PartitionDraft, ServiceDraft
from psaspm.manifest.problems import STRICTER, Problems, Where
from psaspm.manifest.sources import Entry

TFM_PID_BASE = 256


@dataclass(frozen=True)
class Placed:
    """A parsed partition with its PID."""

    pid: int
    draft: PartitionDraft

    @property
    def where(self) -> Where:
        return Where(self.draft.path, self.draft.name)


@dataclass
class Dependencies:
    """Each partition's resolved dependencies: owner index -> the field that names it."""

    owners: list[dict[int, str]] = field(default_factory=list)
    ignored: list[tuple[str, ...]] = field(default_factory=list)


def assign_pids(entries: Sequence[Entry], problems: Problems) -> list[int]:
    """Explicit PIDs as given (unique), the rest numbered after max(explicit, 255)."""
    used: dict[int, str] = {}
    for entry in entries:
        if entry.pid is None:
            continue
        if entry.pid in used:
            problems.add(
                f"{entry.origin}: pid: PID No. {entry.pid} has already been used! "
                f"(by {used[entry.pid]})"
            )
        used.setdefault(entry.pid, entry.origin)
    next_pid = max([*used, TFM_PID_BASE - 1]) + 1
    pids: list[int] = []
    for entry in entries:
        if entry.pid is not None:
            pids.append(entry.pid)
        else:
            pids.append(next_pid)
            next_pid += 1
    return pids


def assemble(
    placed: Sequence[Placed],
    backend: str,
    isolation: int,
    disabled_services: Mapping[str, str],
    unavailable_services: frozenset[str],
    problems: Problems,
    disabled_partitions: Sequence[str] = (),
) -> SystemManifest:
    """The system, with every whole-system problem added to ``problems``."""
    _check_partition_names(placed, problems)
    _check_not_empty(placed, problems)
    _check_services(placed, problems)
    _check_irq_sources(placed, problems)
    slots = _stateless_slots(placed, problems)
    deps = _resolve(placed, disabled_services, unavailable_services, problems)
    cyclic = _check_cycles(placed, deps, problems)
    orders = [0] * len(placed) if cyclic else _load_orders(placed, deps)
    _check_client_ids(placed, problems)
    partitions = tuple(
        _record(p, orders[i], slots, deps.ignored[i], i) for i, p in enumerate(placed)
    )
    return SystemManifest(
        backend,
        isolation,
        partitions,
        _config_impl(partitions),
        disabled_partitions=tuple(disabled_partitions),
        warnings=tuple(_warnings(partitions, backend)),
    )


def check_backend(system: SystemManifest) -> None:
    """TF-M's SFN backend rules, as ConfigErrors (an impossible combination, not bad input)."""
    if system.backend != "sfn":
        return
    ipc = [
        p.name
        for p in system.partitions
        if p.model is Model.IPC and p.pid >= TFM_PID_BASE and not p.ns_agent
    ]
    if ipc:
        raise ConfigError(
            "SFN backend does not support IPC Partitions: " + ", ".join(ipc) + " (use the IPC "
            "backend, or give them model SFN or dual)"
        )
    if system.isolation > 1:
        raise ConfigError(
            f"SFN backend does not support high isolation levels (isolation {system.isolation})"
        )


def _check_partition_names(placed: Sequence[Placed], problems: Problems) -> None:
    seen: dict[str, Placed] = {}
    for p in placed:
        first = seen.setdefault(p.draft.name, p)
        if first is not p:
            problems.at(
                p.where,
                "name",
                f"partition name {p.draft.name} is already used by {first.draft.path} ({STRICTER})",
            )


def _check_not_empty(placed: Sequence[Placed], problems: Problems) -> None:
    for p in placed:
        if p.pid >= TFM_PID_BASE and not p.draft.services and not p.draft.irqs:
            problems.at(
                p.where,
                "services",
                f"{p.draft.name} must declare at least either a secure service or an IRQ!",
            )


def _check_services(placed: Sequence[Placed], problems: Problems) -> None:
    """SIDs unique (as numbers: stricter than TF-M's raw-value check), names unique."""
    sids: dict[int, tuple[Placed, ServiceDraft]] = {}
    names: dict[str, tuple[Placed, ServiceDraft]] = {}
    for p in placed:
        for index, service in enumerate(p.draft.services):
            prior = sids.setdefault(service.sid, (p, service))
            if prior[1] is not service:
                problems.at(p.where, f"services[{index}].sid", _sid_clash(service, *prior))
            first = names.setdefault(service.name, (p, service))
            if first[1] is not service:
                problems.at(
                    p.where,
                    f"services[{index}].name",
                    f"service name {service.name} is already used by partition "
                    f"{first[0].draft.name} ({STRICTER})",
                )


def _sid_clash(service: ServiceDraft, owner: Placed, other: ServiceDraft) -> str:
    detail = (
        f"Service ID: {service.sid_raw!r} has duplications! (service {other.name} of "
        f"partition {owner.draft.name} has it)"
    )
    if service.sid_raw != other.sid_raw:
        detail += f" ({STRICTER}: {other.sid_raw!r} is the same number)"
    return detail


def _check_irq_sources(placed: Sequence[Placed], problems: Problems) -> None:
    """One interrupt source, one owner.  TF-M's manifest tool does not check it: tf-m-tests'
    FLIH and SLIH test partitions both bind TFM_TIMER0_IRQ, and only tf-m-tests' CMake
    config check (``tfm_invalid_config(TEST_NS_SLIH_IRQ AND TEST_NS_FLIH_IRQ)``) keeps them
    apart.  psaspm is stricter: two enabled partitions binding one source are refused."""
    owners: dict[str | int, Placed] = {}
    for p in placed:
        for index, irq in enumerate(p.draft.irqs):
            first = owners.setdefault(irq.source, p)
            if first is not p:
                problems.at(
                    p.where,
                    f"irqs[{index}].source",
                    f"interrupt source {irq.source} is already bound by partition "
                    f"{first.draft.name} ({first.draft.path}); two enabled partitions cannot "
                    f"bind one source ({STRICTER})",
                )


def _stateless_slots(placed: Sequence[Placed], problems: Problems) -> dict[tuple[int, int], int]:
    """Slots 0..31: explicit stateless_handle N takes N-1, then auto ones take the lowest free."""
    wanted = [
        (i, j, p, s)
        for i, p in enumerate(placed)
        if p.draft.psa_framework_version == "1.1"
        for j, s in enumerate(p.draft.services)
        if not s.connection_based
    ]
    if len(wanted) > MAX_STATELESS_HANDLE:
        problems.add(
            f"{wanted[MAX_STATELESS_HANDLE][2].draft.path}: Stateless service numbers range "
            f"exceed {MAX_STATELESS_HANDLE} ({len(wanted)} stateless services)"
        )
    slots: dict[tuple[int, int], int] = {}
    taken: dict[int, str] = {}
    for i, j, p, s in wanted:
        if s.stateless_request is None:
            continue
        slot = s.stateless_request - 1
        if slot in taken:
            problems.at(
                p.where,
                f"services[{j}].stateless_handle",
                f"Duplicated stateless_handle setting: {s.stateless_request} "
                f"(also used by {taken[slot]})",
            )
            continue
        taken[slot] = s.name
        slots[(i, j)] = slot
    free = (n for n in range(MAX_STATELESS_HANDLE) if n not in taken)
    for i, j, _p, s in wanted:
        if s.stateless_request is None:
            slots[(i, j)] = next(free, MAX_STATELESS_HANDLE)
    return slots


def _resolve(
    placed: Sequence[Placed],
    disabled: Mapping[str, str],
    unavailable: frozenset[str],
    problems: Problems,
) -> Dependencies:
    owner_of: dict[str, int] = {}
    for index, p in enumerate(placed):
        for service in p.draft.services:
            owner_of.setdefault(service.name, index)
    deps = Dependencies()
    for p in placed:
        owners: dict[int, str] = {}
        ignored: list[str] = []
        for key, names in (
            ("dependencies", p.draft.dependencies),
            ("weak_dependencies", p.draft.weak_dependencies),
        ):
            for k, name in enumerate(names):
                if name in owner_of:
                    owners.setdefault(owner_of[name], f"{key}[{k}]")
                elif key == "dependencies" and name in disabled:
                    ignored.append(name)
                elif key == "dependencies" and name not in unavailable:
                    problems.at(p.where, f"{key}[{k}]", _unknown_dependency(name))
        deps.owners.append(owners)
        deps.ignored.append(tuple(ignored))
    return deps


def _unknown_dependency(name: str) -> str:
    return (
        f"{name} is not a service of any enabled partition ({STRICTER}: TF-M ignores it and "
        "the C build fails later; list it in weak_dependencies if it is optional)"
    )


def _check_cycles(placed: Sequence[Placed], deps: Dependencies, problems: Problems) -> bool:
    """Report each dependency cycle once (as TF-M words it); True when there is one."""
    state = [0] * len(placed)  # 0 new, 1 on the stack, 2 done
    found: list[list[int]] = []

    def visit(node: int, stack: list[int]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in deps.owners[node]:
            if state[nxt] == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif state[nxt] == 0:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for start in range(len(placed)):
        if state[start] == 0:
            visit(start, [])
    for chain in found:
        first = placed[chain[0]]
        names = ", ".join(placed[n].draft.name for n in chain)
        problems.at(
            first.where,
            deps.owners[chain[0]][chain[1]],
            f"Circular dependency exists in chain: {names}",
        )
    return bool(found)


def _load_orders(placed: Sequence[Placed], deps: Dependencies) -> list[int]:
    """TF-M 2.3: (priority << 8) + (score & 0xFF), score = 1 + sum of its owners' scores."""
    scores: dict[int, int] = {}

    def score(node: int) -> int:
        if node not in scores:
            scores[node] = 1 + sum(score(owner) for owner in deps.owners[node])
        return scores[node]

    return [(p.draft.priority.value << 8) + (score(i) & 0xFF) for i, p in enumerate(placed)]


def _check_client_ids(placed: Sequence[Placed], problems: Problems) -> None:
    agents: list[tuple[Placed, int, int]] = []
    for p in placed:
        if not p.draft.ns_agent:
            continue
        base, limit = p.draft.client_id_base, p.draft.client_id_limit
        if base is None or limit is None:
            problems.at(
                p.where,
                "client_id_base" if base is None else "client_id_limit",
                "an NS agent needs client_id_base and client_id_limit",
            )
            continue
        if base > limit:
            problems.at(
                p.where, "client_id_base", f"{p.draft.name}: Client ID base must <= Client ID limit"
            )
            continue
        _check_irq_client_ids(p, base, limit, problems)
        for other, obase, olimit in agents:
            if base <= olimit and obase <= limit:
                problems.at(
                    p.where,
                    "client_id_base",
                    f"{other.draft.name} and {p.draft.name} have overlapped Client ID ranges",
                )
        agents.append((p, base, limit))


def _check_irq_client_ids(p: Placed, base: int, limit: int, problems: Problems) -> None:
    for index, irq in enumerate(p.draft.irqs):
        ibase, ilimit = irq.client_id_base, irq.client_id_limit
        if ibase is None and ilimit is None:
            continue
        if ibase is None or ilimit is None:
            problems.at(p.where, f"irqs[{index}]", "needs both client_id_base and client_id_limit")
        elif ibase > ilimit:
            problems.at(
                p.where, f"irqs[{index}].client_id_base", "Client ID base must <= Client ID limit"
            )
        elif ibase < base or ilimit > limit:
            problems.at(
                p.where,
                f"irqs[{index}].client_id_base",
                f"{irq.source} Client ID range exceeds {p.draft.name} range",
            )


def _record(
    p: Placed,
    load_order: int,
    slots: Mapping[tuple[int, int], int],
    ignored: tuple[str, ...],
    index: int,
) -> Partition:
    d = p.draft
    services = tuple(_service(s, slots.get((index, j))) for j, s in enumerate(d.services))
    return Partition(
        name=d.name,
        pid=p.pid,
        manifest_path=d.path,
        psa_framework_version=d.psa_framework_version,
        model=d.model,
        declared_model=d.declared_model,
        type=d.type,
        priority=d.priority,
        entry_point=d.entry_point,
        entry_init=d.entry_init,
        stack_size=d.stack_size,
        heap_size=d.heap_size,
        services=services,
        irqs=d.irqs,
        mmio_regions=d.mmio_regions,
        dependencies=d.dependencies,
        weak_dependencies=d.weak_dependencies,
        ns_agent=d.ns_agent,
        client_id_base=d.client_id_base,
        client_id_limit=d.client_id_limit,
        place_in_dtcm=d.place_in_dtcm,
        load_order=load_order,
        description=d.description,
        ignored_dependencies=ignored,
    )


def _service(s: ServiceDraft, slot: int | None) -> Service:
    handle = None
    if slot is not None:
        handle = (1 << 30) | ((s.version & 0xFF) << 8) | (slot & 0x1F)
    return Service(
        name=s.name,
        sid=s.sid,
        version=s.version,
        version_policy=s.version_policy,
        non_secure_clients=s.non_secure_clients,
        connection_based=s.connection_based,
        mm_iovec=s.mm_iovec,
        signal=s.signal,
        stateless_slot=slot,
        stateless_handle=handle,
    )


# TF-M's SPM uses bit 2 of a partition's signals for ASYNC_MSG_REPLY (the reply to a
# psa_call the partition made); an SFN partition's third service gets that bit under the
# IPC backend, and TF-M then panics on its first call (trusted-firmware-m issue #48).
ASYNC_MSG_REPLY = 0x4


def _warnings(partitions: Sequence[Partition], backend: str) -> list[str]:
    """What psaspm runs but TF-M would not: an SFN service on the ASYNC_MSG_REPLY bit."""
    if backend != "ipc":
        return []  # the SFN backend has no partition threads and no reply signal
    found = []
    for p in partitions:
        if p.model is not Model.SFN:
            continue
        for index, service in enumerate(p.services):
            if service.signal == ASYNC_MSG_REPLY:
                found.append(
                    f"{p.manifest_path}: partition {p.name}: services[{index}] {service.name}: "
                    f"signal 0x{ASYNC_MSG_REPLY:x} under the IPC backend is the bit TF-M uses "
                    "for ASYNC_MSG_REPLY: TF-M panics on the first call to this service "
                    "(trusted-firmware-m issue #48); psaspm runs it. A workaround on TF-M: "
                    "declare a placeholder service in its place"
                )
    return found


def _config_impl(partitions: Sequence[Partition]) -> ConfigImpl:
    services = [s for p in partitions for s in p.services]
    irqs = [q for p in partitions for q in p.irqs]
    return ConfigImpl(
        connection_based_service_api=any(s.connection_based for s in services),
        flih_api=any(q.handling is Handling.FLIH for q in irqs),
        slih_api=any(q.handling is Handling.SLIH for q in irqs),
        mmio_region_enable=any(p.mmio_regions for p in partitions),
        arot_present=any(p.type is PartitionType.APPLICATION_ROT for p in partitions),
    )
