"""One small bad manifest per validation rule: TF-M's rules, and where psaspm is stricter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from psaspm.errors import ConfigError, ManifestError
from psaspm.manifest import constants_dict, load_system_manifest
from psaspm.manifest.model import Handling, Model

Factory = Callable[..., dict[str, Any]]
Write = Callable[..., Path]
STRICTER = "psaspm is stricter than TF-M here"


def rejected(
    sources: Path | list[Path],
    field: str,
    fragment: str,
    partition: str | None = "TEST_SP",
    file: Path | None = None,
    **options: Any,
) -> ManifestError:
    """Load, expect a ManifestError, and check one problem names file, partition and field."""
    with pytest.raises(ManifestError) as caught:
        load_system_manifest(sources, **options)
    files = [file] if file else [sources] if isinstance(sources, Path) else sources
    for problem in caught.value.problems:
        if fragment in problem and f": {field}: " in problem:
            assert any(str(f.resolve()) in problem for f in files), problem
            if partition is not None:
                assert f"partition {partition}: " in problem, problem
            return caught.value
    raise AssertionError(f"no problem with {field!r} and {fragment!r}: {caught.value.problems}")


def manifest_list(write: Write, items: list[dict[str, Any]], name: str = "list.yaml") -> Path:
    return write({"type": "manifest_list", "manifest_list": items}, name)


# --- partition attributes -------------------------------------------------------------------


def test_framework_version_must_be_the_number_1_0_or_1_1(
    write_json: Write, partition: Factory
) -> None:
    """psa_framework_version is the YAML number 1.0 or 1.1; the string "1.1" is rejected."""
    path = write_json(partition(psa_framework_version="1.1"))
    rejected(path, "psa_framework_version", "Invalid psa_framework_version of TEST_SP")


def test_framework_version_is_required(write_json: Write, partition: Factory) -> None:
    """A manifest without psa_framework_version is rejected."""
    doc = partition()
    del doc["psa_framework_version"]
    rejected(write_json(doc), "psa_framework_version", "missing (required)")


def test_type_must_be_psa_rot_or_application_rot(write_json: Write, partition: Factory) -> None:
    """type is PSA-ROT or APPLICATION-ROT."""
    rejected(write_json(partition(type="ROT")), "type", "Invalid type of TEST_SP")


def test_priority_highest_is_rejected(write_json: Write, partition: Factory) -> None:
    """priority is HIGH, NORMAL or LOW; HIGHEST exists internally but the validator rejects it."""
    rejected(write_json(partition(priority="HIGHEST")), "priority", "Invalid priority of TEST_SP")


def test_model_is_required_in_ff_1_1(write_json: Write, partition: Factory) -> None:
    """An FF-M 1.1 partition must declare its model."""
    doc = partition()
    del doc["model"]
    rejected(write_json(doc), "model", 'TEST_SP is missing the "model" attribute')


def test_model_must_be_ipc_sfn_or_dual(write_json: Write, partition: Factory) -> None:
    """model is IPC, SFN or dual; anything else is an invalid model."""
    rejected(write_json(partition(model="FOO")), "model", 'Invalid "model" of TEST_SP')


def test_dual_model_follows_the_backend(write_json: Write, partition: Factory) -> None:
    """model: dual becomes the configured backend's model."""
    path = write_json(partition(model="dual", entry_init="test_init"))
    assert load_system_manifest(path).partitions[0].model is Model.IPC
    sfn = load_system_manifest(path, backend="sfn").partitions[0]
    assert sfn.model is Model.SFN and sfn.services[0].signal == 1


def test_ipc_partition_needs_entry_point(write_json: Write, partition: Factory) -> None:
    """An IPC-model partition must name its entry_point."""
    doc = partition()
    del doc["entry_point"]
    rejected(write_json(doc), "entry_point", 'TEST_SP is missing the "entry_point" attribute')


def test_sfn_partition_needs_no_entry(write_json: Write, partition: Factory) -> None:
    """An SFN partition may have neither entry_init nor entry_point."""
    doc = partition(model="SFN")
    del doc["entry_point"]
    part = load_system_manifest(write_json(doc), backend="sfn").partitions[0]
    assert part.entry_init is None and part.entry_point is None


def test_stack_size_must_be_a_number_or_macro(write_json: Write, partition: Factory) -> None:
    """stack_size is a number or a C macro name (psaspm requires it; TF-M's templates do too)."""
    rejected(write_json(partition(stack_size="1 KiB")), "stack_size", "is not a size")
    ok = load_system_manifest(write_json(partition(stack_size="MY_STACK"), "ok.yaml"))
    assert ok.partitions[0].stack_size == "MY_STACK"


def test_unregistered_non_ffm_attribute_is_rejected(write_json: Write, partition: Factory) -> None:
    """A top-level key outside FF-M must be listed in the list item's non_ffm_attributes."""
    path = write_json(partition(ns_agent=False))
    rejected(path, "ns_agent", 'The Non-FFM attribute "ns_agent" is used by "TEST_SP" without')


def test_registered_non_ffm_attribute_is_accepted(write_json: Write, partition: Factory) -> None:
    """A list item's non_ffm_attributes lets its manifest use those extra keys."""
    write_json(partition(weak_dependencies=["NOT_THERE"], place_in_dtcm=True), "sp.yaml")
    listed = manifest_list(
        write_json,
        [{"manifest": "sp.yaml", "non_ffm_attributes": ["weak_dependencies", "place_in_dtcm"]}],
    )
    part = load_system_manifest(listed).partitions[0]
    assert part.place_in_dtcm and part.weak_dependencies == ("NOT_THERE",)


def test_partition_needs_a_service_or_irq(write_json: Write, partition: Factory) -> None:
    """A partition with pid >= 256 (or auto) must declare at least a service or an IRQ."""
    path = write_json(partition(services=[]))
    rejected(path, "services", "must declare at least either a secure service or an IRQ!")


def test_internal_pid_partition_may_be_empty(write_json: Write, partition: Factory) -> None:
    """A partition with an internal pid (< 256) is exempt from the service-or-IRQ rule."""
    write_json(partition(services=[]), "sp.yaml")
    listed = manifest_list(write_json, [{"manifest": "sp.yaml", "pid": 5}])
    assert load_system_manifest(listed).partitions[0].pid == 5


def test_services_and_irqs_are_limited_to_28(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """services + IRQs may fill 28 signals but not 29."""
    services = [service(name=f"SVC_{i}", sid=0xF000 + i) for i in range(27)]
    irq = {"source": "IRQ_A", "name": "IRQ_A", "handling": "SLIH"}
    ok = load_system_manifest(write_json(partition(services=services, irqs=[irq]), "ok.yaml"))
    assert ok.partitions[0].services[-1].signal == 1 << 30
    assert ok.partitions[0].irqs[0].signal == 1 << 31
    services.append(service(name="SVC_X", sid=0xF100))
    path = write_json(partition(services=services, irqs=[irq]))
    rejected(
        path, "services", "Total number of Services and IRQs of TEST_SP exceeds the limit (28)"
    )


def test_partition_names_are_unique(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """Two enabled partitions may not share a name (stricter than TF-M)."""
    a = write_json(partition(), "a.yaml")
    b = write_json(partition(services=[service(name="OTHER", sid=0xF001)]), "b.yaml")
    error = rejected([a, b], "name", "partition name TEST_SP is already used")
    assert STRICTER in str(error)


# --- services --------------------------------------------------------------------------------


def test_unknown_service_attribute_is_rejected(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """A service may only use FF-M's service keys (no registration escape hatch)."""
    path = write_json(partition(services=[service(minor_version=1)]))
    rejected(
        path, "services[0]", 'Invalid attribute "minor_version" used by "TEST_SP" in "services"'
    )


def test_connection_based_is_mandatory_in_1_1(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """FF-M 1.1 services must say connection_based."""
    svc = service()
    del svc["connection_based"]
    path = write_json(partition(services=[svc]))
    rejected(path, "services[0].connection_based", "'connection_based' is mandatory in FF-M 1.1")


def test_ff_1_0_services_are_always_connection_based(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """FF-M 1.0 forces IPC and connection-based services, even when the manifest says false."""
    doc = partition(psa_framework_version=1.0, services=[service(connection_based=False)])
    del doc["model"]
    part = load_system_manifest(write_json(doc)).partitions[0]
    assert part.model is Model.IPC and part.services[0].connection_based
    assert part.services[0].stateless_handle is None


def test_sid_must_be_a_number(write_json: Write, partition: Factory, service: Factory) -> None:
    """sid is an integer or a hex/decimal string of one."""
    path = write_json(partition(services=[service(sid="SID_A")]))
    rejected(path, "services[0].sid", "is not a 32-bit service ID")


def test_duplicate_sid_is_rejected(write_json: Write, partition: Factory, service: Factory) -> None:
    """Two enabled services may not share a SID (TF-M compares the raw values)."""
    a = write_json(partition(), "a.yaml")
    b = write_json(partition(name="OTHER_SP", services=[service(name="OTHER")]), "b.yaml")
    error = rejected(
        [a, b],
        "services[0].sid",
        "Service ID: '0x0000F000' has duplications!",
        partition="OTHER_SP",
    )
    assert STRICTER not in str(error)


def test_sids_equal_as_numbers_are_duplicates(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """SIDs spelt differently but equal as numbers are duplicates (stricter than TF-M)."""
    a = write_json(partition(), "a.yaml")
    b = write_json(
        partition(name="OTHER_SP", services=[service(name="OTHER", sid=0xF000)]), "b.yaml"
    )
    error = rejected([a, b], "services[0].sid", "has duplications!", partition="OTHER_SP")
    assert STRICTER in str(error)


def test_service_names_are_unique(write_json: Write, partition: Factory, service: Factory) -> None:
    """Two services may not share a name (stricter than TF-M)."""
    path = write_json(partition(services=[service(), service(sid=0xF001)]))
    rejected(
        path,
        "services[1].name",
        f"service name TEST_SVC is already used by partition TEST_SP ({STRICTER})",
    )


def test_version_policy_must_be_strict_or_relaxed(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """version_policy is STRICT or RELAXED (stricter: TF-M fails only at C compile)."""
    path = write_json(partition(services=[service(version_policy="LOOSE")]))
    rejected(path, "services[0].version_policy", f"'LOOSE' is not STRICT or RELAXED ({STRICTER})")


@pytest.mark.parametrize("version", [0, 256, "1"])
def test_stateless_version_must_be_1_to_255(
    version: object, write_json: Write, partition: Factory, service: Factory
) -> None:
    """A stateless service's version is an integer 1..255 (stricter: it goes into the handle,
    where TF-M keeps only the low 8 bits)."""
    stateless = service(version=version, connection_based=False)
    path = write_json(partition(services=[stateless]))
    rejected(path, "services[0].version", f"is not an integer 1..255 ({STRICTER}: the version")


@pytest.mark.parametrize("version", [0, 0x1_0000_0000, "1", True])
def test_connection_based_version_must_be_32_bit(
    version: object, write_json: Write, partition: Factory, service: Factory
) -> None:
    """A connection-based service's version is a 32-bit value 1..0xFFFFFFFF."""
    path = write_json(partition(services=[service(version=version)]))
    rejected(path, "services[0].version", f"is not a 32-bit version 1..0xFFFFFFFF ({STRICTER})")


def test_connection_based_version_may_exceed_255(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """A connection-based service may have a version above 255 (FF-M's uint32_t), kept whole."""
    path = write_json(partition(services=[service(version=0xFFFFFFFF)]))
    system = load_system_manifest(path)
    assert system.partitions[0].services[0].version == 0xFFFFFFFF
    assert constants_dict(system)["TEST_SVC_VERSION"] == 0xFFFFFFFF


def test_mm_iovec_must_be_enable_or_disable(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """mm_iovec is "enable" or "disable" (stricter than TF-M, which treats others as disabled)."""
    path = write_json(partition(services=[service(mm_iovec="yes")]))
    rejected(path, "services[0].mm_iovec", f'\'yes\' is not "enable" or "disable" ({STRICTER})')


def test_non_secure_clients_must_be_boolean(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """non_secure_clients is true or false (stricter than TF-M)."""
    path = write_json(partition(services=[service(non_secure_clients="yes")]))
    rejected(path, "services[0].non_secure_clients", STRICTER)


@pytest.mark.parametrize("handle", [0, 33, "7", True])
def test_stateless_handle_is_1_to_32_or_auto(
    handle: object, write_json: Write, partition: Factory, service: Factory
) -> None:
    """stateless_handle is an int 1..32 or "auto"; anything else (even "7") is invalid."""
    path = write_json(
        partition(services=[service(connection_based=False, stateless_handle=handle)])
    )
    rejected(path, "services[0].stateless_handle", "Invalid stateless_handle setting")


def test_stateless_handle_must_not_repeat(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """Two services may not ask for the same stateless_handle."""
    services = [
        service(connection_based=False, stateless_handle=3),
        service(name="SVC_B", sid=0xF001, connection_based=False, stateless_handle=3),
    ]
    path = write_json(partition(services=services))
    rejected(path, "services[1].stateless_handle", "Duplicated stateless_handle setting: 3")


def test_at_most_32_stateless_services(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """More than 32 stateless services in the system is rejected."""
    paths = []
    for n in range(2):
        services = [
            service(name=f"SVC_{n}_{i}", sid=0x1000 * (n + 1) + i, connection_based=False)
            for i in range(17)
        ]
        paths.append(write_json(partition(name=f"SP_{n}", services=services), f"p{n}.yaml"))
    with pytest.raises(ManifestError, match="Stateless service numbers range exceed 32"):
        load_system_manifest(paths)


def test_auto_stateless_handles_fill_lowest_free_slots(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """Explicit handle N takes slot N-1; auto ones then take the lowest free slots in order."""
    services = [
        service(name="AUTO_A", sid=1, connection_based=False),
        service(name="FIXED", sid=2, connection_based=False, stateless_handle=1, version=3),
        service(name="AUTO_B", sid=3, connection_based=False, stateless_handle="auto"),
    ]
    part = load_system_manifest(write_json(partition(services=services))).partitions[0]
    assert [s.stateless_slot for s in part.services] == [1, 0, 2]
    assert [s.stateless_handle for s in part.services] == [0x40000101, 0x40000300, 0x40000102]


# --- IRQs and MMIO ---------------------------------------------------------------------------


def _irq(**fields: Any) -> dict[str, Any]:
    return {"source": "IRQ_A", "name": "IRQ_A", "handling": "SLIH"} | fields


def test_unknown_irq_attribute_is_rejected(write_json: Write, partition: Factory) -> None:
    """An IRQ may only use FF-M's IRQ keys (mbox_flags too is refused)."""
    path = write_json(partition(irqs=[_irq(mbox_flags=1)]))
    rejected(path, "irqs[0]", 'Invalid attribute "mbox_flags" used by "TEST_SP" in "irqs"')


def test_handling_must_be_flih_or_slih(write_json: Write, partition: Factory) -> None:
    """handling is FLIH or SLIH (stricter: TF-M treats anything but FLIH as SLIH)."""
    path = write_json(partition(irqs=[_irq(handling="FOO")]))
    rejected(path, "irqs[0].handling", f"'FOO' is not FLIH or SLIH ({STRICTER})")


def test_missing_handling_means_slih(write_json: Write, partition: Factory) -> None:
    """An FF-M 1.1 IRQ without handling is SLIH, as in TF-M."""
    irq = _irq()
    del irq["handling"]
    part = load_system_manifest(write_json(partition(irqs=[irq]))).partitions[0]
    assert part.irqs[0].handling is Handling.SLIH


def test_ff_1_1_irq_needs_a_name(write_json: Write, partition: Factory) -> None:
    """An FF-M 1.1 IRQ needs name (TF-M's template crashes without it)."""
    irq = _irq()
    del irq["name"]
    rejected(write_json(partition(irqs=[irq])), "irqs[0].name", "missing (required)")


def test_ff_1_0_irq_uses_signal_and_refuses_flih(write_json: Write, partition: Factory) -> None:
    """An FF-M 1.0 IRQ names its signal macro, and is always SLIH (FLIH is refused: stricter)."""
    doc = partition(psa_framework_version=1.0, irqs=[{"source": 5, "signal": "MY_SIG"}])
    part = load_system_manifest(write_json(doc, "ok.yaml")).partitions[0]
    assert (part.irqs[0].name, part.irqs[0].source) == ("MY_SIG", 5)
    doc = partition(
        psa_framework_version=1.0, irqs=[{"source": 5, "signal": "MY_SIG", "handling": "FLIH"}]
    )
    rejected(write_json(doc), "irqs[0].handling", STRICTER)
    doc = partition(psa_framework_version=1.0, irqs=[{"source": 5}])
    rejected(write_json(doc, "nosig.yaml"), "irqs[0].signal", "missing (required)")


def test_irq_source_bound_once_per_partition(write_json: Write, partition: Factory) -> None:
    """One partition may not bind the same IRQ source twice (stricter than TF-M)."""
    path = write_json(partition(irqs=[_irq(), _irq(name="IRQ_B")]))
    rejected(path, "irqs[1].source", f"'IRQ_A' is already bound by irqs[0] ({STRICTER})")


def test_irq_source_bound_by_one_partition_only(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """Two enabled partitions binding the same interrupt source are rejected, naming both
    partitions and the source (stricter than TF-M's tool)."""
    write_json(partition(name="SP_A", irqs=[_irq()]), "a.yaml")
    other = partition(name="SP_B", services=[service(name="B", sid=2)], irqs=[_irq()])
    b = write_json(other, "b.yaml")
    listed = manifest_list(write_json, [{"manifest": "a.yaml"}, {"manifest": "b.yaml"}])
    error = rejected(
        listed,
        "irqs[0].source",
        "interrupt source IRQ_A is already bound by partition SP_A",
        partition="SP_B",
        file=b,
    )
    assert f"({STRICTER})" in str(error)


def test_irq_source_of_a_disabled_partition_is_free(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """A partition a conditional disabled binds nothing: another may take its source."""
    write_json(partition(name="SP_A", irqs=[_irq()]), "a.yaml")
    write_json(partition(name="SP_B", services=[service(name="B", sid=2)], irqs=[_irq()]), "b.yaml")
    items = [{"manifest": "a.yaml", "conditional": "A"}, {"manifest": "b.yaml"}]
    system = load_system_manifest(manifest_list(write_json, items), config={"A": "OFF"})
    assert [p.name for p in system.partitions] == ["SP_B"]
    assert system.disabled_partitions == ("SP_A",)


def _sfn_services(service: Factory, count: int) -> list[dict[str, Any]]:
    return [service(name=f"SVC_{i}", sid=0x100 + i, connection_based=False) for i in range(count)]


def test_sfn_service_on_the_async_reply_bit_is_a_warning(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """Under the IPC backend, an SFN partition's service on signal 0x4 (TF-M's ASYNC_MSG_REPLY)
    loads with a warning naming the partition, the service and trusted-firmware-m issue #48."""
    doc = partition(model="SFN", services=_sfn_services(service, 4))
    del doc["entry_point"]
    path = write_json(doc)
    system = load_system_manifest(path, backend="ipc")
    assert system.partitions[0].services[2].signal == 0x4
    (warning,) = system.warnings
    assert str(path.resolve()) in warning and "partition TEST_SP" in warning
    assert "SVC_2" in warning and "ASYNC_MSG_REPLY" in warning
    assert "trusted-firmware-m issue #48" in warning
    # The SFN backend has no reply signal; an IPC-model partition's services start at bit 4.
    assert load_system_manifest(path, backend="sfn").warnings == ()
    ipc = write_json(partition(services=_sfn_services(service, 4)), "ipc.yaml")
    assert load_system_manifest(ipc).warnings == ()


def test_two_sfn_services_give_no_warning(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """An SFN partition with two services uses bits 0 and 1 only: no warning."""
    doc = partition(model="SFN", services=_sfn_services(service, 2))
    del doc["entry_point"]
    assert load_system_manifest(write_json(doc)).warnings == ()


def test_irq_signal_names_unique_per_partition(write_json: Write, partition: Factory) -> None:
    """Within one partition IRQ signal macros may not repeat (stricter than TF-M)."""
    path = write_json(partition(irqs=[_irq(), _irq(source="IRQ_B")]))
    rejected(path, "irqs[1]", f"signal IRQ_A_SIGNAL is already defined by irqs[0] ({STRICTER})")


def test_mmio_permission_must_be_read_write_or_read_only(
    write_json: Write, partition: Factory
) -> None:
    """An MMIO region's permission is READ-WRITE or READ-ONLY (stricter than TF-M)."""
    path = write_json(partition(mmio_regions=[{"name": "PERIPH", "permission": "RW"}]))
    rejected(path, "mmio_regions[0].permission", STRICTER)


def test_mmio_conditional_is_rejected(write_json: Write, partition: Factory) -> None:
    """conditional inside mmio_regions is refused by TF-M's key check."""
    region = {"name": "PERIPH", "permission": "READ-WRITE", "conditional": "X"}
    path = write_json(partition(mmio_regions=[region]))
    rejected(
        path,
        "mmio_regions[0]",
        'Invalid attribute "conditional" used by "TEST_SP" in "mmio_regions"',
    )


def test_numbered_mmio_region(write_json: Write, partition: Factory) -> None:
    """A numbered MMIO region has base and size, and enables the MMIO config switch."""
    region = {"base": "0x40000000", "size": 4096, "permission": "READ-ONLY"}
    system = load_system_manifest(write_json(partition(mmio_regions=[region])))
    assert system.partitions[0].mmio_regions[0].base == 0x40000000
    assert system.config_impl.mmio_region_enable


# --- dependencies ----------------------------------------------------------------------------


def test_unknown_strong_dependency_is_rejected(write_json: Write, partition: Factory) -> None:
    """A strong dependency naming no enabled service is an error (stricter than TF-M)."""
    path = write_json(partition(dependencies=["NOPE"]))
    rejected(path, "dependencies[0]", f"NOPE is not a service of any enabled partition ({STRICTER}")


def test_unknown_weak_dependency_is_ignored(write_json: Write, partition: Factory) -> None:
    """A weak dependency naming no enabled service is ignored."""
    write_json(partition(weak_dependencies=["NOPE"]), "sp.yaml")
    listed = manifest_list(
        write_json, [{"manifest": "sp.yaml", "non_ffm_attributes": ["weak_dependencies"]}]
    )
    assert load_system_manifest(listed).partitions[0].load_order == 0x1F01


def test_circular_dependency_is_rejected(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """Dependencies may not form a cycle; TF-M names the chain."""
    a = write_json(
        partition(name="SP_A", services=[service(name="SVC_A", sid=1)], dependencies=["SVC_B"]),
        "a.yaml",
    )
    b = write_json(
        partition(name="SP_B", services=[service(name="SVC_B", sid=2)], dependencies=["SVC_A"]),
        "b.yaml",
    )
    rejected(
        [a, b],
        "dependencies[0]",
        "Circular dependency exists in chain: SP_A, SP_B, SP_A",
        partition="SP_A",
    )


def test_self_dependency_is_circular(write_json: Write, partition: Factory) -> None:
    """A partition depending on its own service is a cycle, as in TF-M."""
    path = write_json(partition(dependencies=["TEST_SVC"]))
    rejected(path, "dependencies[0]", "Circular dependency exists in chain: TEST_SP, TEST_SP")


# --- NS agents -------------------------------------------------------------------------------


def _agent_list(write: Write, partition: Factory, agents: list[dict[str, Any]]) -> Path:
    items = []
    for index, fields in enumerate(agents):
        doc = (
            partition(
                name=f"AGENT_{index}",
                ns_agent=True,
                services=[],
                irqs=[_irq(source=f"IRQ_{index}", name=f"IRQ_{index}")],
            )
            | fields
        )
        write(doc, f"agent{index}.yaml")
        items.append({"manifest": f"agent{index}.yaml", "non_ffm_attributes": ["ns_agent"]})
    return manifest_list(write, items)


def test_ns_agent_client_ids_accept_both_forms(write_json: Write, partition: Factory) -> None:
    """Client IDs may be written "-0x0400ffff" or in two's complement "0xfbff0001"."""
    listed = _agent_list(
        write_json, partition, [{"client_id_base": "0xfbff0001", "client_id_limit": "-0x04000000"}]
    )
    agent = load_system_manifest(listed).partitions[0]
    assert (agent.client_id_base, agent.client_id_limit) == (-0x0400FFFF, -0x04000000)


def test_ns_agent_client_id_must_be_negative(write_json: Write, partition: Factory) -> None:
    """An NS agent's client ID must be a negative 32-bit integer."""
    listed = _agent_list(
        write_json, partition, [{"client_id_base": "0x10", "client_id_limit": "-0x1"}]
    )
    rejected(
        listed,
        "client_id_base",
        "Client ID ('0x10') is not a 32-bit negative integer",
        partition="AGENT_0",
        file=listed.parent / "agent0.yaml",
    )


def test_ns_agent_needs_client_ids(write_json: Write, partition: Factory) -> None:
    """An NS agent must give client_id_base and client_id_limit."""
    listed = _agent_list(write_json, partition, [{}])
    rejected(
        listed,
        "client_id_base",
        "an NS agent needs client_id_base",
        partition="AGENT_0",
        file=listed.parent / "agent0.yaml",
    )


def test_ns_agent_base_must_not_exceed_limit(write_json: Write, partition: Factory) -> None:
    """client_id_base must be <= client_id_limit."""
    listed = _agent_list(
        write_json, partition, [{"client_id_base": "-0x100", "client_id_limit": "-0x200"}]
    )
    rejected(
        listed,
        "client_id_base",
        "Client ID base must <= Client ID limit",
        partition="AGENT_0",
        file=listed.parent / "agent0.yaml",
    )


def test_ns_agent_ranges_must_not_overlap(write_json: Write, partition: Factory) -> None:
    """Two NS agents' client-ID ranges may not overlap."""
    listed = _agent_list(
        write_json,
        partition,
        [
            {"client_id_base": "-0x200", "client_id_limit": "-0x100"},
            {"client_id_base": "-0x180", "client_id_limit": "-0x80", "services": []},
        ],
    )
    rejected(
        listed,
        "client_id_base",
        "AGENT_0 and AGENT_1 have overlapped Client ID ranges",
        partition="AGENT_1",
        file=listed.parent / "agent1.yaml",
    )


def test_ns_agent_irq_range_inside_partition_range(write_json: Write, partition: Factory) -> None:
    """An NS agent IRQ's client-ID range must lie inside the partition's range."""
    irq = _irq(client_id_base="-0x300", client_id_limit="-0x100")
    listed = _agent_list(
        write_json,
        partition,
        [{"client_id_base": "-0x200", "client_id_limit": "-0x100", "irqs": [irq]}],
    )
    rejected(
        listed,
        "irqs[0].client_id_base",
        "IRQ_A Client ID range exceeds AGENT_0 range",
        partition="AGENT_0",
        file=listed.parent / "agent0.yaml",
    )


# --- files and lists -------------------------------------------------------------------------


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    """Malformed YAML is a ManifestError naming the file and the line."""
    path = tmp_path / "bad.yaml"
    path.write_text('{\n  "name": "X",\n  "type": [\n}\n', encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_system_manifest(path)
    assert str(path.resolve()) in str(caught.value) and "line 4" in str(caught.value)


def test_manifest_must_be_a_mapping(write_json: Write) -> None:
    """A partition manifest that is not a mapping is rejected, naming the file."""
    path = write_json(["not", "a", "manifest"])
    with pytest.raises(ManifestError, match="must be a mapping"):
        load_system_manifest(path)


def test_missing_source_is_reported(tmp_path: Path) -> None:
    """A source path that is not a file is a ManifestError, not a crash."""
    with pytest.raises(ManifestError, match="not a file"):
        load_system_manifest(tmp_path / "nope.yaml")


def test_list_entry_for_missing_file_is_reported(write_json: Write) -> None:
    """A list item pointing at a missing file names the list, the item and both paths tried."""
    listed = manifest_list(write_json, [{"description": "Gone", "manifest": "gone.yaml"}])
    with pytest.raises(ManifestError) as caught:
        load_system_manifest(listed)
    message = str(caught.value)
    assert str(listed) in message and "manifest_list[0] (Gone): manifest:" in message
    assert "'gone.yaml' not found" in message


def test_list_entry_without_manifest_names_list_index_and_field(write_json: Write) -> None:
    """A list entry without `manifest:` is reported with the list file, the entry's index and
    the missing field, not as "None is not a path"."""
    listed = manifest_list(write_json, [{"description": "Nameless", "pid": 300}])
    with pytest.raises(ManifestError) as caught:
        load_system_manifest(listed)
    message = str(caught.value)
    assert message.startswith(f"{listed}: manifest_list[0] (Nameless): manifest: missing")
    assert "None" not in message


@pytest.mark.parametrize("text", ["", "# only a comment\n\n# and another\n", "---\n"])
def test_empty_document_is_not_a_manifest(text: str, tmp_path: Path) -> None:
    """An empty or comment-only file is not a manifest: a ManifestError naming the file."""
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_system_manifest(path)
    assert str(caught.value) == f"{path.resolve()}: empty document: not a manifest list or a " + (
        "partition manifest"
    )


def test_empty_listed_manifest_is_rejected(write_json: Write, tmp_path: Path) -> None:
    """A list entry naming an empty file is rejected, naming that file."""
    (tmp_path / "blank.yaml").write_text("# nothing yet\n", encoding="utf-8")
    listed = manifest_list(write_json, [{"manifest": "blank.yaml"}])
    with pytest.raises(ManifestError, match=r"blank\.yaml: empty document"):
        load_system_manifest(listed)


def test_manifest_given_directly_and_by_its_list(write_json: Write, partition: Factory) -> None:
    """A glob that picks up a list and the manifests it lists reports each manifest as given
    twice (as a source and in the list), never as a partition duplicating itself."""
    sp = write_json(partition(), "sp.yaml")
    listed = manifest_list(write_json, [{"description": "SP", "manifest": "sp.yaml"}])
    with pytest.raises(ManifestError) as caught:
        load_system_manifest([listed, sp])
    (problem,) = caught.value.problems
    assert problem == (
        f"{sp.resolve()}: given twice, in {listed.resolve()}: manifest_list[0] (SP) and as a "
        "source (give a manifest list or the manifests it lists, not both)"
    )


def test_same_manifest_twice_is_reported_once(write_json: Write, partition: Factory) -> None:
    """The same manifest given twice as a source is one problem naming the file."""
    sp = write_json(partition(), "sp.yaml")
    with pytest.raises(ManifestError) as caught:
        load_system_manifest([sp, sp])
    assert caught.value.problems == (
        f"{sp.resolve()}: given twice as a source (give each manifest once)",
    )


def test_undefined_conditional_names_the_flag(write_json: Write, partition: Factory) -> None:
    """A conditional the config does not define is an error naming the flag."""
    write_json(partition(), "sp.yaml")
    listed = manifest_list(write_json, [{"manifest": "sp.yaml", "conditional": "MY_FLAG"}])
    with pytest.raises(ManifestError, match='Configuration "MY_FLAG" is not defined!'):
        load_system_manifest(listed)


@pytest.mark.parametrize("value", ["1", "ON", "true", "Enabled", True, 1])
def test_conditional_on_values(value: object, write_json: Write, partition: Factory) -> None:
    """1/on/true/enabled (any case), True and 1 switch a conditional partition on."""
    write_json(partition(), "sp.yaml")
    listed = manifest_list(write_json, [{"manifest": "sp.yaml", "conditional": "F"}])
    assert len(load_system_manifest(listed, config={"F": value}).partitions) == 1


@pytest.mark.parametrize("value", ["0", "OFF", "false", "Disabled", "", False, 0])
def test_conditional_off_values(value: object, write_json: Write, partition: Factory) -> None:
    """0/off/false/disabled/"" (any case), False and 0 switch it off: the file is not even read."""
    listed = manifest_list(write_json, [{"manifest": "missing.yaml", "conditional": "F"}])
    assert load_system_manifest(listed, config={"F": value}).partitions == ()


def test_conditional_other_value_is_rejected(write_json: Write, partition: Factory) -> None:
    """Any other conditional value (such as 2) is an error."""
    write_json(partition(), "sp.yaml")
    listed = manifest_list(write_json, [{"manifest": "sp.yaml", "conditional": "F"}])
    with pytest.raises(ManifestError, match='Invalid "conditional" attribute: "F"'):
        load_system_manifest(listed, config={"F": "2"})


def test_explicit_pids_must_be_unique(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """Two enabled items may not give the same pid."""
    write_json(partition(), "a.yaml")
    write_json(partition(name="SP_B", services=[service(name="B", sid=2)]), "b.yaml")
    listed = manifest_list(
        write_json, [{"manifest": "a.yaml", "pid": 300}, {"manifest": "b.yaml", "pid": 300}]
    )
    with pytest.raises(ManifestError, match=r"manifest_list\[1\]: pid: PID No\. 300 has already"):
        load_system_manifest(listed)


def test_auto_pids_follow_the_highest_explicit_pid(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """Partitions without pid are numbered after max(explicit pids, 255), in list order."""
    for name in ("A", "B", "C"):
        write_json(
            partition(name=f"SP_{name}", services=[service(name=name, sid=ord(name))]),
            f"{name}.yaml",
        )
    listed = manifest_list(
        write_json,
        [{"manifest": "A.yaml"}, {"manifest": "B.yaml", "pid": 400}, {"manifest": "C.yaml"}],
    )
    assert [p.pid for p in load_system_manifest(listed).partitions] == [401, 400, 402]
    direct = load_system_manifest([write_json(partition(), "d.yaml")])
    assert direct.partitions[0].pid == 256


def test_reserved_pids_are_rejected(write_json: Write, partition: Factory) -> None:
    """pids 0-2 belong to the SPM (invalid, idle, TZ agent): stricter than TF-M."""
    write_json(partition(), "sp.yaml")
    listed = manifest_list(write_json, [{"manifest": "sp.yaml", "pid": 1}])
    with pytest.raises(ManifestError, match="pid: 1 is reserved for TFM_SP_IDLE"):
        load_system_manifest(listed)


def test_every_problem_is_collected(
    write_json: Write, partition: Factory, service: Factory
) -> None:
    """The loader goes on after the first problem and reports all of them at once."""
    doc = partition(type="X", priority="Y", services=[service(version_policy="LOOSE")])
    with pytest.raises(ManifestError) as caught:
        load_system_manifest(write_json(doc))
    problems = caught.value.problems
    assert len(problems) == 3 and str(caught.value) == problems[0]
    assert [p.split(": ")[2] for p in problems] == [
        "services[0].version_policy",
        "type",
        "priority",
    ]


# --- backend and isolation -------------------------------------------------------------------


def test_sfn_backend_rejects_ipc_partitions(write_json: Write, partition: Factory) -> None:
    """The SFN backend refuses an IPC-model partition with pid >= 256 that is no NS agent."""
    path = write_json(partition())
    with pytest.raises(ConfigError, match="SFN backend does not support IPC Partitions: TEST_SP"):
        load_system_manifest(path, backend="sfn")


def test_sfn_backend_allows_internal_pid_ipc_partition(
    write_json: Write, partition: Factory
) -> None:
    """An IPC partition with an internal pid (< 256) is allowed under SFN."""
    write_json(partition(), "sp.yaml")
    listed = manifest_list(write_json, [{"manifest": "sp.yaml", "pid": 200}])
    assert load_system_manifest(listed, backend="sfn").partitions[0].model is Model.IPC


@pytest.mark.parametrize("isolation", [2, 3])
def test_sfn_backend_refuses_high_isolation(
    isolation: int, write_json: Write, partition: Factory
) -> None:
    """The SFN backend supports isolation level 1 only."""
    path = write_json(partition(model="SFN"))
    with pytest.raises(ConfigError, match="SFN backend does not support high isolation levels"):
        load_system_manifest(path, backend="sfn", isolation=isolation)


@pytest.mark.parametrize(
    ("backend", "isolation"), [("FOO", 1), ("ipc", 0), ("ipc", 4), ("ipc", True)]
)
def test_backend_and_isolation_are_validated(
    backend: str, isolation: int, write_json: Write, partition: Factory
) -> None:
    """backend is ipc or sfn and isolation 1..3; anything else is a ConfigError."""
    with pytest.raises(ConfigError) as caught:
        load_system_manifest(write_json(partition()), backend=backend, isolation=isolation)
    assert not isinstance(caught.value, ManifestError)
