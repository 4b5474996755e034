"""The real TF-M, tf-m-tests and psa-arch-tests manifests: what loads, what is rejected, and
the values TF-M 2.3's tool assigns, worked out by hand from the rules doc."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from psaspm.errors import ConfigError, ManifestError
from psaspm.manifest import constants_dict, load_system_manifest
from psaspm.manifest.model import Handling, Model, Partition, SystemManifest

AllOn = Callable[..., dict[str, object]]

UNKNOWN_DEP = "is not a service of any enabled partition (psaspm is stricter than TF-M here"
UNREGISTERED = "without registration"
SECURE_FUNCTIONS = 'The Non-FFM attribute "secure_functions"'
MINOR = 'Invalid attribute "minor_'
SHARED_TIMER = (
    "partition TFM_SP_FLIH_TEST: irqs[0].source: interrupt source TFM_TIMER0_IRQ is already "
    "bound by partition TFM_SP_SLIH_TEST"
)

# Every corpus file -> None (loads on its own, all conditionals on) or the reasons it is
# rejected: each problem must contain one of the fragments, and each fragment must occur.
CORPUS: dict[str, tuple[str, ...] | None] = {
    "psa-arch-tests/api-tests/platform/manifests/client_partition_psa.json": (
        "dependencies[0]: DRIVER_UART " + UNKNOWN_DEP,
        "dependencies[8]: SERVER_CONNECTION_DROP " + UNKNOWN_DEP,
        UNKNOWN_DEP,
    ),
    "psa-arch-tests/api-tests/platform/manifests/driver_partition_psa.json": None,
    "psa-arch-tests/api-tests/platform/manifests/server_partition_psa.json": (
        "dependencies[0]: DRIVER_UART " + UNKNOWN_DEP,
        "dependencies[1]: DRIVER_NVMEM " + UNKNOWN_DEP,
    ),
    "tf-m-tests/tests_psa_arch/spe/tfm_psa_ff_test_manifest_list.yaml": None,
    "tf-m-tests/tests_reg/test/secure_fw/common_test_services/tfm_secure_client_2/"
    "tfm_secure_client_2.yaml": (
        '"weak_dependencies" is used by "TFM_SP_SECURE_CLIENT_2" ' + UNREGISTERED,
    ),
    "tf-m-tests/tests_reg/test/secure_fw/common_test_services/tfm_secure_client_service/"
    "tfm_secure_client_service.yaml": (
        '"weak_dependencies" is used by "TFM_SP_SECURE_TEST_PARTITION" ' + UNREGISTERED,
    ),
    "tf-m-tests/tests_reg/test/secure_fw/suites/fpu/service/tfm_fpu_service_test.yaml": None,
    "tf-m-tests/tests_reg/test/secure_fw/suites/ps/service/tfm_ps_test_service.yaml": (
        "dependencies[0]: TFM_CRYPTO " + UNKNOWN_DEP,
        "dependencies[1]: TFM_INTERNAL_TRUSTED_STORAGE_SERVICE " + UNKNOWN_DEP,
    ),
    "tf-m-tests/tests_reg/test/secure_fw/suites/spm/ipc/service/tfm_ipc_client/"
    "tfm_ipc_client_test.yaml": (
        '"weak_dependencies" is used by "TFM_SP_IPC_CLIENT_TEST" ' + UNREGISTERED,
    ),
    "tf-m-tests/tests_reg/test/secure_fw/suites/spm/ipc/service/tfm_ipc_service/"
    "tfm_ipc_service_test.yaml": None,
    "tf-m-tests/tests_reg/test/secure_fw/suites/spm/irq/service/tfm_flih_test_service/"
    "tfm_flih_test_service.yaml": None,
    "tf-m-tests/tests_reg/test/secure_fw/suites/spm/irq/service/tfm_slih_test_service/"
    "tfm_slih_test_service.yaml": None,
    "tf-m-tests/tests_reg/test/secure_fw/suites/spm/sfn/service/sfn_backend_test_partition/"
    "sfn_backend_test_partition.yaml": None,
    # On its own the test list lacks TF-M's partitions, which PS_TEST needs (strongly); with
    # every conditional on, its FLIH and SLIH test partitions both bind TFM_TIMER0_IRQ.
    "tf-m-tests/tests_reg/test/secure_fw/tfm_test_manifest_list.yaml": (
        "TFM_SP_PS_TEST: dependencies[0]: TFM_CRYPTO " + UNKNOWN_DEP,
        "TFM_SP_PS_TEST: dependencies[1]: TFM_INTERNAL_TRUSTED_STORAGE_SERVICE " + UNKNOWN_DEP,
        SHARED_TIMER,
    ),
    "trusted-firmware-m/platform/ext/target/arm/rse/automotive_rd/css-aspen/manifest/"
    "ns_agent_mailbox.yaml": ('"ns_agent" is used by "TFM_NS_MAILBOX_AGENT" ' + UNREGISTERED,),
    # RSE attestation needs TFM_MEASURED_BOOT, whose partition is not in the corpus.
    "trusted-firmware-m/platform/ext/target/arm/rse/automotive_rd/css-aspen/manifest/"
    "tfm_manifest_list.yaml": ("dependencies[1]: TFM_MEASURED_BOOT " + UNKNOWN_DEP,),
    "trusted-firmware-m/platform/ext/target/arm/rse/automotive_rd/rd1ae/manifest/"
    "ns_agent_mailbox.yaml": ('"ns_agent" is used by "TFM_NS_MAILBOX_AGENT" ' + UNREGISTERED,),
    "trusted-firmware-m/platform/ext/target/arm/rse/automotive_rd/rd1ae/manifest/"
    "tfm_manifest_list.yaml": None,
    "trusted-firmware-m/platform/ext/target/arm/rse/common/manifest/ns_agent_mailbox.yaml": (
        '"ns_agent" is used by "TFM_NS_MAILBOX_AGENT" ' + UNREGISTERED,
    ),
    "trusted-firmware-m/platform/ext/target/arm/rse/common/manifest/tfm_crypto.yaml": (
        '"place_in_dtcm" is used by "TFM_SP_CRYPTO" ' + UNREGISTERED,
    ),
    "trusted-firmware-m/platform/ext/target/arm/rse/common/manifest/tfm_initial_attestation.yaml": (
        "dependencies[0]: TFM_CRYPTO " + UNKNOWN_DEP,
        "dependencies[1]: TFM_MEASURED_BOOT " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/platform/ext/target/arm/rse/common/manifest/tfm_manifest_list.yaml": (
        "dependencies[1]: TFM_MEASURED_BOOT " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/platform/ext/target/arm/rse/kronos/manifest/tfm_crypto.yaml": None,
    "trusted-firmware-m/platform/ext/target/arm/rse/kronos/manifest/tfm_manifest_list.yaml": None,
    "trusted-firmware-m/platform/ext/target/arm/rse/kronos/manifest/tfm_protected_storage.yaml": (
        "dependencies[0]: TFM_CRYPTO " + UNKNOWN_DEP,
        "dependencies[1]: TFM_PLATFORM_SERVICE " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/platform/ext/target/arm/rse/neoverse_rd/common/manifest/"
    "ns_agent_mailbox.yaml": ('"ns_agent" is used by "TFM_NS_MAILBOX_AGENT" ' + UNREGISTERED,),
    "trusted-firmware-m/platform/ext/target/arm/rse/neoverse_rd/common/manifest/"
    "tfm_manifest_list.yaml": ("dependencies[1]: TFM_MEASURED_BOOT " + UNKNOWN_DEP,),
    "trusted-firmware-m/platform/ext/target/rpi/rp2350/manifest/tfm_initial_attestation.yaml": (
        "dependencies[0]: TFM_CRYPTO " + UNKNOWN_DEP,
        "dependencies[1]: TFM_MEASURED_BOOT " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/platform/ext/target/rpi/rp2350/manifest/tfm_manifest_list.yaml": (
        "dependencies[1]: TFM_MEASURED_BOOT " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/platform/ext/target/rpi/rp2350/manifest/tfm_platform.yaml": (
        "dependencies[0]: TFM_INTERNAL_TRUSTED_STORAGE_SERVICE " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/secure_fw/partitions/crypto/tfm_crypto.yaml": (
        "dependencies[0]: TFM_INTERNAL_TRUSTED_STORAGE_SERVICE " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/secure_fw/partitions/firmware_update/tfm_firmware_update.yaml": (
        "dependencies[0]: TFM_CRYPTO " + UNKNOWN_DEP,
        "dependencies[1]: TFM_PLATFORM_SERVICE " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/secure_fw/partitions/initial_attestation/tfm_initial_attestation.yaml": (
        "dependencies[0]: TFM_CRYPTO " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/secure_fw/partitions/internal_trusted_storage/"
    "tfm_internal_trusted_storage.yaml": None,
    "trusted-firmware-m/secure_fw/partitions/ns_agent_mailbox/ns_agent_mailbox.yaml": (
        '"ns_agent" is used by "TFM_NS_MAILBOX_AGENT" ' + UNREGISTERED,
    ),
    "trusted-firmware-m/secure_fw/partitions/platform/tfm_platform.yaml": None,
    "trusted-firmware-m/secure_fw/partitions/protected_storage/tfm_protected_storage.yaml": (
        "dependencies[0]: TFM_CRYPTO " + UNKNOWN_DEP,
        "dependencies[1]: TFM_INTERNAL_TRUSTED_STORAGE_SERVICE " + UNKNOWN_DEP,
        "dependencies[2]: TFM_PLATFORM_SERVICE " + UNKNOWN_DEP,
    ),
    "trusted-firmware-m/tools/tfm_manifest_list.yaml": None,
    # TF-M 1.6 manifests still carry the library-model secure_functions, and minor_version.
    "trusted-firmware-m-v1.6.0/secure_fw/partitions/audit_logging/tfm_audit_logging.yaml": (
        SECURE_FUNCTIONS,
        'mmio_regions[0]: Invalid attribute "conditional"',
    ),
    "trusted-firmware-m-v1.6.0/secure_fw/partitions/crypto/tfm_crypto.yaml": (SECURE_FUNCTIONS,),
    "trusted-firmware-m-v1.6.0/secure_fw/partitions/firmware_update/tfm_firmware_update.yaml": (
        SECURE_FUNCTIONS,
    ),
    "trusted-firmware-m-v1.6.0/secure_fw/partitions/initial_attestation/"
    "tfm_initial_attestation.yaml": (SECURE_FUNCTIONS,),
    "trusted-firmware-m-v1.6.0/secure_fw/partitions/internal_trusted_storage/"
    "tfm_internal_trusted_storage.yaml": (SECURE_FUNCTIONS,),
    "trusted-firmware-m-v1.6.0/secure_fw/partitions/ns_agent_mailbox/ns_agent_mailbox.yaml": None,
    "trusted-firmware-m-v1.6.0/secure_fw/partitions/platform/tfm_platform.yaml": (
        SECURE_FUNCTIONS,
        "services[0]: " + MINOR,
        "services[1]: " + MINOR,
    ),
    "trusted-firmware-m-v1.6.0/secure_fw/partitions/protected_storage/tfm_protected_storage.yaml": (
        SECURE_FUNCTIONS,
    ),
    "trusted-firmware-m-v1.6.0/secure_fw/partitions/psa_proxy/tfm_psa_proxy.yaml": (
        "services[4]: " + MINOR,
        "services[5]: " + MINOR,
    ),
    "trusted-firmware-m-v1.6.0/tools/tfm_manifest_list.yaml": (
        "manifest_list[0] (Non-Secure Mailbox Agent): pid: 0 is reserved for INVALID_PARTITION_ID (psaspm is stricter",
        SECURE_FUNCTIONS,
        'Invalid attribute "conditional"',
        MINOR,
    ),
}


def _corpus_files(corpus: Path) -> list[str]:
    files = [*corpus.rglob("*.yaml"), *corpus.rglob("*.json")]
    return sorted(str(f.relative_to(corpus)) for f in files)


def test_corpus_table_covers_every_manifest(corpus: Path) -> None:
    """Every manifest and manifest list in the corpus has a stated outcome below."""
    assert _corpus_files(corpus) == sorted(CORPUS)


@pytest.mark.parametrize("relpath", sorted(CORPUS))
def test_corpus_file_loads_or_is_rejected_for_its_stated_reason(
    relpath: str,
    corpus: Path,
    tfm_root: Path,
    all_on: AllOn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each corpus file, alone with all conditionals on, loads or fails for exactly its reason."""
    monkeypatch.chdir(tfm_root)  # platform lists name manifests relative to the TF-M root
    path = corpus / relpath
    paths = {
        "PSA_ARCH_TESTS_PATH": str(corpus / "psa-arch-tests"),
        "CMAKE_SOURCE_DIR": str(corpus / "trusted-firmware-m-v1.6.0"),
    }
    config = all_on(path) if path.name.endswith("list.yaml") else {}
    expected = CORPUS[relpath]
    if expected is None:
        system = load_system_manifest(path, config=config, paths=paths)
        assert system.partitions
        return
    with pytest.raises(ManifestError) as caught:
        load_system_manifest(path, config=config, paths=paths)
    problems = caught.value.problems
    assert str(caught.value) == problems[0]
    for problem in problems:
        assert any(f in problem for f in expected), problem
    for fragment in expected:
        assert any(fragment in p for p in problems), fragment


def test_ff_list_without_psa_arch_tests_path_names_the_variable(
    ff_list: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unset ${PSA_ARCH_TESTS_PATH} is an error naming the variable, the list and the item."""
    monkeypatch.delenv("PSA_ARCH_TESTS_PATH", raising=False)
    with pytest.raises(ManifestError) as caught:
        load_system_manifest(ff_list)
    assert len(caught.value.problems) == 3
    first = caught.value.problems[0]
    assert str(ff_list.resolve()) in first
    assert "manifest_list[0] (PSA FF Test Client Partition)" in first
    assert "${PSA_ARCH_TESTS_PATH}" in first and "is not set" in first


def test_psa_arch_tests_path_falls_back_to_the_environment(
    ff_list: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """${VAR} is taken from paths= first and from os.environ when paths= lacks it."""
    monkeypatch.setenv("PSA_ARCH_TESTS_PATH", str(corpus / "psa-arch-tests"))
    system = load_system_manifest(ff_list)
    assert [p.name for p in system.partitions] == [
        "CLIENT_PARTITION",
        "SERVER_PARTITION",
        "DRIVER_PARTITION",
    ]


def _by_name(system: SystemManifest) -> dict[str, Partition]:
    return {p.name: p for p in system.partitions}


TFM_PIDS = {
    "TFM_NS_MAILBOX_AGENT": 262,
    "TFM_SP_PS": 256,
    "TFM_SP_ITS": 257,
    "TFM_SP_CRYPTO": 259,
    "TFM_SP_PLATFORM": 260,
    "TFM_SP_INITIAL_ATTESTATION": 261,
    "TFM_SP_FWU": 271,
}
# load_order = (priority << 8) + score; score = 1 + the scores of the partitions it depends on.
# ITS 1, Platform 1, Crypto 1+ITS = 2, Attestation 1+Crypto = 3, FWU 1+Crypto+Platform = 4,
# PS 1+Crypto+ITS+Platform = 5, mailbox (LOW, no deps) 0x7f01.
TFM_LOAD_ORDERS = {
    "TFM_SP_ITS": 0x1F01,
    "TFM_SP_PLATFORM": 0x1F01,
    "TFM_SP_CRYPTO": 0x1F02,
    "TFM_SP_INITIAL_ATTESTATION": 0x1F03,
    "TFM_SP_FWU": 0x1F04,
    "TFM_SP_PS": 0x1F05,
    "TFM_NS_MAILBOX_AGENT": 0x7F01,
}
# Explicit stateless_handle N takes slot N-1: handle = (1 << 30) | (version << 8) | slot.
TFM_HANDLES = {
    "TFM_CRYPTO": 0x40000100,  # 1 -> slot 0
    "TFM_PROTECTED_STORAGE_SERVICE": 0x40000101,  # 2 -> slot 1
    "TFM_INTERNAL_TRUSTED_STORAGE_SERVICE": 0x40000102,  # 3 -> slot 2
    "TFM_ATTESTATION_SERVICE": 0x40000103,  # 4 -> slot 3
    "TFM_FIRMWARE_UPDATE_SERVICE": 0x40000104,  # 5 -> slot 4
    "TFM_PLATFORM_SERVICE": 0x40000105,  # 6 -> slot 5
    "NS_AGENT_MBOX_PROCESS_NEW_MSG": 0x4000011D,  # 30 -> slot 29
}


def _check_tfm_default(system: SystemManifest) -> None:
    parts = _by_name(system)
    assert [p.name for p in system.partitions] == list(TFM_PIDS)  # pid.h = list order
    assert {n: p.pid for n, p in parts.items()} == TFM_PIDS
    assert {n: p.load_order for n, p in parts.items()} == TFM_LOAD_ORDERS
    handles = {s.name: s.stateless_handle for p in system.partitions for s in p.services}
    assert handles == TFM_HANDLES
    for p in system.partitions:
        if p.name != "TFM_NS_MAILBOX_AGENT":
            assert p.model is Model.SFN
            assert p.services[0].signal == 1 << 0  # SFN: service i -> 1 << i
    agent = parts["TFM_NS_MAILBOX_AGENT"]
    assert agent.model is Model.IPC and agent.ns_agent
    assert agent.services[0].signal == 0x10  # IPC: service i -> 1 << (i + 4)
    assert agent.irqs[0].name == "MAILBOX_INTERRUPT_SIGNAL"
    assert agent.irqs[0].signal == 0x80000000  # IRQ j -> 1 << (31 - j)
    assert agent.irqs[0].handling is Handling.SLIH
    assert (agent.client_id_base, agent.client_id_limit) == (-0x0400FFFF, -0x04000000)
    impl = system.config_impl
    assert not impl.connection_based_service_api
    assert not impl.flih_api and impl.slih_api
    assert not impl.mmio_region_enable
    assert impl.arot_present  # PS is APPLICATION-ROT


def test_tfm_default_list_ipc_isolation_2(tfm_list: Path, all_on: AllOn) -> None:
    """TF-M's list with every partition on loads under IPC level 2 with TF-M's values."""
    system = load_system_manifest(tfm_list, backend="ipc", isolation=2, config=all_on(tfm_list))
    assert (system.backend, system.isolation) == ("ipc", 2)
    _check_tfm_default(system)


def test_tfm_default_list_sfn_isolation_1_keeps_the_ipc_mailbox_agent(
    tfm_list: Path, all_on: AllOn
) -> None:
    """Under SFN level 1 the IPC-model mailbox agent is allowed because it is an NS agent."""
    system = load_system_manifest(tfm_list, backend="sfn", isolation=1, config=all_on(tfm_list))
    _check_tfm_default(system)


def test_flih_and_slih_test_partitions_cannot_share_their_timer(
    tfm_list: Path, tests_list: Path, all_on: AllOn
) -> None:
    """tf-m-tests' FLIH and SLIH test partitions both bind TFM_TIMER0_IRQ: enabled together they
    are rejected, naming both partitions and the source (TF-M's tool does not check it)."""
    with pytest.raises(ManifestError) as caught:
        load_system_manifest([tfm_list, tests_list], config=all_on(tfm_list, tests_list))
    assert any(SHARED_TIMER in problem for problem in caught.value.problems)


def test_tfm_list_with_tests_list_under_ipc(
    tfm_list: Path, tests_list: Path, all_on: AllOn
) -> None:
    """TF-M's list plus tf-m-tests' list (the SLIH test, FLIH off) loads under IPC."""
    config = all_on(tfm_list, tests_list) | {"TFM_PARTITION_FLIH_TEST": "OFF"}
    system = load_system_manifest([tfm_list, tests_list], config=config)
    parts = _by_name(system)
    assert [p.pid for p in system.partitions][7:] == [
        3002,
        3003,
        3004,
        3005,
        3006,
        3008,
        3010,
        3011,
    ]
    assert "TFM_SP_FLIH_TEST" in system.disabled_partitions
    # Auto stateless handles take the lowest free slots (0-5 and 29 are explicit), in order.
    handles = {s.name: s.stateless_handle for p in system.partitions for s in p.services}
    assert handles["IPC_SERVICE_TEST_STATELESS_ROT"] == 0x40000106
    assert handles["IPC_SERVICE_TEST_MMIOVEC"] == 0x40000107
    assert handles["TFM_SLIH_TEST_CASE"] == 0x40000108
    assert "TFM_FLIH_TEST_CASE" not in handles
    assert handles["SFN_TEST_STATELESS"] == 0x40000109
    assert handles["SFN_TEST_CONNECTION_BASED"] is None
    # IPC signals from bit 4; SFN from bit 0; dual follows the backend (IPC here).
    ipc_test = parts["TFM_SP_IPC_SERVICE_TEST"]
    assert [s.signal for s in ipc_test.services] == [1 << (i + 4) for i in range(11)]
    sfn = parts["TFM_SFN_PARTITION1"]
    assert sfn.model is Model.SFN and [s.signal for s in sfn.services] == [1, 2, 4]
    assert parts["TFM_SP_SLIH_TEST"].model is Model.IPC
    assert parts["TFM_SP_SLIH_TEST"].declared_model == "dual"
    # FF-M 1.0 client: IPC, every service connection-based.
    client = parts["TFM_SP_IPC_CLIENT_TEST"]
    assert client.psa_framework_version == "1.0" and client.model is Model.IPC
    assert all(s.connection_based for s in client.services)
    # Load orders: HIGH 0x0f, LOW 0x7f; the secure client counts its 23 weak deps (11 present):
    # 1 + SC2(4) + Crypto 2 + PS 5 + ITS 1 + Attest 3 + PS_TEST 4 + Platform 1 + FWU 4
    #   + IPC_SERVICE 1 + FPU 1 + IPC_CLIENT 6 + SFN 1 = 34.
    assert ipc_test.load_order == 0x0F01
    assert parts["TFM_SP_SECURE_CLIENT_2"].load_order == 0x1F04  # 1 + Crypto 2 + ITS 1
    assert parts["TFM_SP_PS_TEST"].load_order == 0x1F04
    assert client.load_order == 0x1F06  # 1 + IPC_SERVICE 1 + SECURE_CLIENT_2 4 (weak)
    assert parts["TFM_SP_SECURE_TEST_PARTITION"].load_order == 0x7F00 + 34
    assert parts["TFM_SP_SLIH_TEST"].irqs[0].source == "TFM_TIMER0_IRQ"
    assert parts["TFM_SP_SLIH_TEST"].irqs[0].name == "TFM_TIMER0_IRQ_SIGNAL"
    impl = system.config_impl
    assert impl.connection_based_service_api and impl.slih_api and not impl.flih_api
    assert impl.mmio_region_enable


def test_tfm_list_with_the_flih_test_instead(
    tfm_list: Path, tests_list: Path, all_on: AllOn
) -> None:
    """With the SLIH test off, the FLIH test partition takes its pid, slot and the timer."""
    config = all_on(tfm_list, tests_list) | {"TFM_PARTITION_SLIH_TEST": "OFF"}
    system = load_system_manifest([tfm_list, tests_list], config=config)
    flih = _by_name(system)["TFM_SP_FLIH_TEST"]
    assert flih.pid == 3009 and flih.irqs[0].source == "TFM_TIMER0_IRQ"
    assert flih.services[0].stateless_handle == 0x40000108
    assert system.config_impl.flih_api


def test_tfm_list_with_tests_list_rejects_sfn_backend(
    tfm_list: Path, tests_list: Path, all_on: AllOn
) -> None:
    """The SFN backend refuses the IPC-model test partitions (pid >= 256, not NS agents)."""
    with pytest.raises(ConfigError) as caught:
        load_system_manifest(
            [tfm_list, tests_list],
            backend="sfn",
            config=all_on(tfm_list, tests_list) | {"TFM_PARTITION_FLIH_TEST": "OFF"},
        )
    assert not isinstance(caught.value, ManifestError)
    assert (
        "SFN backend does not support IPC Partitions: TFM_SP_IPC_SERVICE_TEST, "
        "TFM_SP_IPC_CLIENT_TEST" in str(caught.value)
    )


def test_tfm_list_with_psa_ff_list(
    tfm_list: Path, ff_list: Path, corpus: Path, all_on: AllOn
) -> None:
    """TF-M's list plus the PSA FF test list loads with PSA_ARCH_TESTS_PATH given in paths=."""
    system = load_system_manifest(
        [tfm_list, ff_list],
        config=all_on(tfm_list),
        paths={"PSA_ARCH_TESTS_PATH": str(corpus / "psa-arch-tests")},
    )
    parts = _by_name(system)
    assert [parts[n].pid for n in ("CLIENT_PARTITION", "SERVER_PARTITION", "DRIVER_PARTITION")] == [
        5000,
        5001,
        5002,
    ]
    driver = parts["DRIVER_PARTITION"]
    assert driver.irqs[0].name == "DRIVER_UART_INTR_SIG"  # FF-M 1.0: the signal name
    assert driver.irqs[0].signal == 0x80000000 and driver.irqs[0].handling is Handling.SLIH
    server = parts["SERVER_PARTITION"]
    unspecified = server.services[3]
    assert (unspecified.version, unspecified.version_policy.value) == (1, "STRICT")
    assert server.heap_size == 0x100
    # 1 + DRIVER 1 + SERVER (1 + DRIVER 1) = 4.
    assert parts["CLIENT_PARTITION"].load_order == 0x1F04
    assert server.load_order == 0x1F02
    constants = constants_dict(system)
    assert constants["DRIVER_UART_INTR_SIG"] == 0x80000000
    assert constants["SERVER_STRICT_VERSION_VERSION"] == 2
    assert constants["SERVER_PARTITION"] == 5001


def test_disabled_partition_dependency_is_ignored_and_recorded(
    tfm_list: Path, tests_list: Path, all_on: AllOn
) -> None:
    """A strong dependency on a service whose partition a conditional disabled is recorded."""
    config = all_on(tfm_list, tests_list) | {
        "TFM_PARTITION_CRYPTO": "OFF",
        "TFM_PARTITION_FLIH_TEST": "OFF",
    }
    system = load_system_manifest([tfm_list, tests_list], config=config)
    parts = _by_name(system)
    assert "TFM_SP_CRYPTO" not in parts
    assert parts["TFM_SP_PS"].ignored_dependencies == ("TFM_CRYPTO",)
    assert parts["TFM_SP_PS_TEST"].ignored_dependencies == ("TFM_CRYPTO",)
    assert parts["TFM_SP_PS"].load_order == 0x1F03  # 1 + ITS 1 + Platform 1
    # Slot 0 is free now, so the first auto handle takes it.
    handles = {s.name: s.stateless_handle for p in system.partitions for s in p.services}
    assert handles["IPC_SERVICE_TEST_STATELESS_ROT"] == 0x40000100


def test_kronos_list_keeps_internal_pid_mailbox(
    corpus: Path, tfm_root: Path, all_on: AllOn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list entry with an internal pid (< 256) keeps it; paths resolve against the cwd."""
    monkeypatch.chdir(tfm_root)
    kronos = tfm_root / "platform/ext/target/arm/rse/kronos/manifest/tfm_manifest_list.yaml"
    system = load_system_manifest(kronos, backend="sfn", config=all_on(kronos))
    assert _by_name(system)["TFM_NS_MAILBOX_AGENT"].pid == 3
