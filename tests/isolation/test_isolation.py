"""Isolation levels as real boundaries: memory checks, MemManage faults, MMIO, boundary switches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import psaspm
from psaspm import Ptr
from psaspm.consts import PSA_ERROR_PROGRAMMER_ERROR, PSA_SUCCESS

from . import memory_partitions

CONFIGS = [("sfn", 1), ("ipc", 1), ("ipc", 2), ("ipc", 3)]
NAMES = {"A": "TFM_SP_A", "B": "TFM_SP_B", "P": "TFM_SP_P"}


def _manifest(tmp: Path, key: str, rot: str, deps: list[str], mmio: str | None) -> Path:
    doc = {
        "psa_framework_version": 1.1,
        "name": NAMES[key],
        "type": rot,
        "priority": "NORMAL",
        "model": "SFN",
        "stack_size": "0x400",
        "services": [
            {
                "name": f"TFM_{key}",
                "sid": f"0x{0x3000 + ord(key):x}",
                "non_secure_clients": True,
                "connection_based": False,
                "version": 1,
            }
        ],
        "dependencies": deps,
    }
    if mmio:
        doc["mmio_regions"] = [{"name": "TFM_PERIPHERAL_TIMER0", "permission": mmio}]
    path = tmp / f"{key.lower()}.yaml"
    path.write_text(json.dumps(doc))
    return path


def _system(
    tmp: Path, backend: str, isolation: int, timer_permission: str = "READ-WRITE"
) -> psaspm.System:
    sources = [
        _manifest(tmp, "A", "APPLICATION-ROT", ["TFM_B", "TFM_P"], timer_permission),
        _manifest(tmp, "B", "APPLICATION-ROT", [], None),
        _manifest(tmp, "P", "PSA-ROT", [], None),
    ]
    code = {name: memory_partitions for name in NAMES.values()}
    system = psaspm.load(sources, backend=backend, isolation=isolation, code=code)
    system.boot()
    return system


def _run(system: psaspm.System, key: str, command: str, out: bytearray | None = None) -> int:
    ns = system.ns_client()
    return ns.call(
        system.constants[f"TFM_{key}_HANDLE"],
        0,
        [command.encode()],
        [out] if out is not None else [],
    )


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_ns_pointer_vectors(tmp_path: Path, backend: str, isolation: int) -> None:
    """NS callers may pass pointers into NS memory; an out-vector pointer's len becomes the bytes written."""
    system = _system(tmp_path, backend, isolation)
    owner = _run(system, "B", "alloc")
    command = system.ns_memory.alloc(32, f"peek {owner}".encode())
    command.len = len(f"peek {owner}")
    out = system.ns_memory.alloc(16)
    status = system.ns_client().call(system.constants["TFM_B_HANDLE"], 0, [command], [out])
    assert status == PSA_SUCCESS
    assert out.len == 16
    assert system.ns_memory.read(out) == b"secret:B".ljust(16, b"\0")


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_ns_pointer_to_secure_memory_refused(tmp_path: Path, backend: str, isolation: int) -> None:
    """A non-secure pointer vector into secure memory is a programmer error (status for NS); nothing reaches the service."""
    system = _system(tmp_path, backend, isolation)
    secret = _run(system, "P", "alloc")
    messages = system.stats["messages"]
    status = system.ns_client().call(system.constants["TFM_P_HANDLE"], 0, [Ptr(secret, 16)])
    assert status == PSA_ERROR_PROGRAMMER_ERROR
    assert system.stats["messages"] == messages
    assert system.state == "running"


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_overlapping_in_vectors_refused(tmp_path: Path, backend: str, isolation: int) -> None:
    """Two in-vector pointers that overlap are a programmer error; adjacent ones are fine."""
    system = _system(tmp_path, backend, isolation)
    buf = system.ns_memory.alloc(32, b"alloc".ljust(32, b" "))
    handle = system.constants["TFM_B_HANDLE"]
    ns = system.ns_client()
    assert (
        ns.call(handle, 0, [Ptr(buf.addr, 8), Ptr(buf.addr + 4, 8)]) == PSA_ERROR_PROGRAMMER_ERROR
    )
    assert ns.call(handle, 0, [Ptr(buf.addr, 5), Ptr(buf.addr + 5, 8)]) > 0


@pytest.mark.parametrize(
    ("isolation", "reader", "owner", "allowed"),
    [
        (1, "A", "P", True),  # level 1: one secure domain
        (2, "A", "B", True),  # level 2: App-RoT partitions share a domain
        (2, "A", "P", False),  # level 2: PSA-RoT is protected from App-RoT
        (2, "P", "A", True),  # privileged PSA-RoT reaches everything
        (3, "A", "B", False),  # level 3: each App-RoT partition alone
        (3, "P", "B", True),
    ],
)
def test_partition_memory_boundaries(
    tmp_path: Path, isolation: int, reader: str, owner: str, allowed: bool
) -> None:
    """A partition reads another's private data only where its isolation boundary allows; otherwise a MemManage panic names it, the address and the region."""
    system = _system(tmp_path, "ipc", isolation)
    secret = _run(system, owner, "alloc")
    out = bytearray(16)
    if allowed:
        assert _run(system, reader, f"peek {secret}", out) == PSA_SUCCESS
        assert out.startswith(f"secret:{owner}".encode())
        return
    with pytest.raises(psaspm.Panic) as info:
        _run(system, reader, f"peek {secret}", out)
    record = info.value.record
    assert (record.partition, record.api) == (NAMES[reader], "MemManage")
    assert f"{secret:#010x}" in record.reason
    assert f"{NAMES[owner]}.data" in record.reason


@pytest.mark.parametrize(("isolation", "allowed"), [(1, True), (2, True), (3, False)])
def test_secure_pointer_vector_checked_against_caller(
    tmp_path: Path, isolation: int, allowed: bool
) -> None:
    """A secure caller's pointer vector is checked against the caller's boundary; a forbidden one panics the caller."""
    system = _system(tmp_path, "ipc", isolation)
    b_secret = _run(system, "B", "alloc")
    command = f"pass {system.constants['TFM_B_HANDLE']} {b_secret} 4"
    if allowed:
        assert _run(system, "A", command) > 0  # B served "alloc" and replied an address
        return
    with pytest.raises(psaspm.Panic) as info:
        _run(system, "A", command)
    assert info.value.record.partition == "TFM_SP_A"
    assert info.value.record.api == "psa_call"


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_ns_cannot_read_secure_memory(tmp_path: Path, backend: str, isolation: int) -> None:
    """The non-secure side reaches non-secure RAM only."""
    system = _system(tmp_path, backend, isolation)
    secret = _run(system, "P", "alloc")
    with pytest.raises(psaspm.MemoryFault):
        system.ns_memory.read(secret, 4)


@pytest.mark.parametrize(
    ("isolation", "reader", "allowed"),
    [(1, "B", True), (2, "B", False), (2, "P", True), (2, "A", True)],
)
def test_mmio_only_for_its_partitions(
    tmp_path: Path, isolation: int, reader: str, allowed: bool
) -> None:
    """An unprivileged partition touches only the MMIO regions its manifest lists; privileged code reaches all."""
    system = _system(tmp_path, "ipc", isolation)
    if allowed:
        assert _run(system, reader, "timer-status") == 0
        return
    with pytest.raises(psaspm.Panic) as info:
        _run(system, reader, "timer-status")
    assert info.value.record.api == "MemManage"
    assert "TFM_PERIPHERAL_TIMER0" in info.value.record.reason


def test_read_only_mmio_cannot_be_written(tmp_path: Path) -> None:
    """A READ-ONLY MMIO region can be read but a write to it is a MemManage fault."""
    system = _system(tmp_path, "ipc", 2, timer_permission="READ-ONLY")
    assert _run(system, "A", "timer-read") == 0
    with pytest.raises(psaspm.Panic) as info:
        _run(system, "A", "timer 5")
    assert "READ-ONLY" in info.value.record.reason


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_timer_device_counts_ticks(tmp_path: Path, backend: str, isolation: int) -> None:
    """The timer model interrupts after RELOAD ticks of platform time and reports it in INTSTATUS until cleared."""
    system = _system(tmp_path, backend, isolation)
    assert _run(system, "A", "timer 3") == PSA_SUCCESS
    system.tick(2)
    assert _run(system, "A", "timer-status") == 0
    system.tick(1)
    assert _run(system, "A", "timer-status") == 1
    assert _run(system, "A", "timer-status") == 0


@pytest.mark.parametrize(("isolation", "switches"), [(1, 0), (2, 2), (3, 2)])
def test_boundary_switches_only_when_boundary_changes(
    tmp_path: Path, isolation: int, switches: int
) -> None:
    """A call from NS to an App-RoT partition switches boundaries in and out except at level 1; PSA-RoT shares the privileged boundary."""
    system = _system(tmp_path, "ipc", isolation)
    before = system.stats["boundary_switches"]
    _run(system, "B", "alloc")
    assert system.stats["boundary_switches"] - before == switches
    before = system.stats["boundary_switches"]
    _run(system, "P", "alloc")
    assert system.stats["boundary_switches"] == before


def test_unknown_named_mmio_region(tmp_path: Path) -> None:
    """A named MMIO region the platform does not describe fails boot with an error naming the partition and the region."""
    doc = json.loads(_manifest(tmp_path, "A", "APPLICATION-ROT", [], "READ-WRITE").read_text())
    doc["mmio_regions"] = [{"name": "NO_SUCH_PERIPHERAL", "permission": "READ-WRITE"}]
    path = tmp_path / "a.yaml"
    path.write_text(json.dumps(doc))
    system = psaspm.load(path, code={"TFM_SP_A": memory_partitions})
    with pytest.raises(psaspm.ConfigError, match=r"TFM_SP_A.*NO_SUCH_PERIPHERAL"):
        system.boot()


def test_platform_description_can_be_replaced(tmp_path: Path) -> None:
    """A user platform description moves peripherals; the partition finds them where it says."""
    default = (Path(psaspm.__file__).parent / "data" / "platform.yaml").read_text()
    custom = tmp_path / "platform.yaml"
    custom.write_text(default.replace("0x50000000", "0x40000000"))
    sources = [_manifest(tmp_path, "A", "APPLICATION-ROT", [], "READ-WRITE")]
    system = psaspm.load(sources, platform=custom, code={"TFM_SP_A": memory_partitions})
    system.boot()
    assert system.platform.peripherals["TFM_PERIPHERAL_TIMER0"].base == 0x40000000
    assert _run(system, "A", "timer 1") == PSA_SUCCESS
    system.tick(1)
    assert _run(system, "A", "timer-status") == 1


def test_bad_platform_description(tmp_path: Path) -> None:
    """A malformed platform description is a ConfigError naming the file and the field."""
    bad = tmp_path / "platform.yaml"
    bad.write_text("memory: {ns_ram: {base: 1}}\n")
    with pytest.raises(psaspm.ConfigError, match=r"platform\.yaml: memory\.secure_ram"):
        psaspm.load(_manifest(tmp_path, "B", "APPLICATION-ROT", [], None), platform=bad)
