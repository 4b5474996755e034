"""``psaspm headers``: TF-M's generated headers, names and values, for the real manifests."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from psaspm.cbuild import INCLUDE_DIR
from psaspm.cli import main
from psaspm.errors import ConfigError
from psaspm.manifest import load_system_manifest
from psaspm.manifest.headers import partition_header_name, render_headers, write_headers
from psaspm.manifest.model import SystemManifest

from .conftest import compile_check

DEFINE = re.compile(r"^#define[ \t]+(\w+)[ \t]+(.+?)[ \t]*$", re.MULTILINE)


def _conditionals(*lists: Path) -> dict[str, object]:
    """Every conditional of the lists on, but tf-m-tests' SLIH test: it binds the timer
    source the FLIH test binds, and one build enables only one of them."""
    flags: dict[str, object] = {}
    for path in lists:
        for item in yaml.safe_load(path.read_text(encoding="utf-8"))["manifest_list"]:
            if "conditional" in item:
                flags[item["conditional"]] = "1"
    if "TFM_PARTITION_SLIH_TEST" in flags:
        flags["TFM_PARTITION_SLIH_TEST"] = "0"
    return flags


@pytest.fixture
def tfm_and_tests(
    tfm_list: Path, tests_list: Path
) -> Callable[..., tuple[SystemManifest, dict[str, object]]]:
    """TF-M's list plus tf-m-tests' list, every conditional on (but the SLIH test), in a
    given backend."""
    lists = [
        tfm_list,
        tests_list,
    ]
    config = _conditionals(*lists)

    def load(backend: str = "ipc", isolation: int = 1) -> tuple[SystemManifest, dict[str, object]]:
        system = load_system_manifest(lists, backend=backend, isolation=isolation, config=config)
        return system, config

    return load


def _defines(text: str) -> dict[str, str]:
    """Each macro's first definition (config_impl.h redefines one under #if)."""
    found: dict[str, str] = {}
    for name, value in DEFINE.findall(text):
        found.setdefault(name, value)
    return found


def _value(text: str) -> int:
    """The integer a generated macro's text stands for: ``(0x00000060U)`` -> 96."""
    return int(text.strip("()").rstrip("uU"), 0)


def test_sid_h_pins_tf_m_values(tfm_and_tests: Callable[..., tuple[SystemManifest, Any]]) -> None:
    """sid.h has TF-M's SIDs, versions and stateless handles (as in TF-M's generated sid.h)."""
    system, config = tfm_and_tests()
    sid = _defines(render_headers(system, config)["psa_manifest/sid.h"])
    assert _value(sid["TFM_CRYPTO_SID"]) == 0x80
    assert _value(sid["TFM_CRYPTO_VERSION"]) == 1
    assert _value(sid["TFM_CRYPTO_HANDLE"]) == 0x40000100
    assert _value(sid["TFM_PROTECTED_STORAGE_SERVICE_HANDLE"]) == 0x40000101
    assert _value(sid["TFM_INTERNAL_TRUSTED_STORAGE_SERVICE_HANDLE"]) == 0x40000102
    assert _value(sid["NS_AGENT_MBOX_PROCESS_NEW_MSG_HANDLE"]) == 0x4000011D  # stateless_handle 30
    assert _value(sid["IPC_SERVICE_TEST_BASIC_SID"]) == 0xF080
    assert "IPC_SERVICE_TEST_BASIC_HANDLE" not in sid  # connection-based: no handle


def test_pid_h_pins_tf_m_values(tfm_and_tests: Callable[..., tuple[SystemManifest, Any]]) -> None:
    """pid.h has each partition's pid (list pids, the rest after the highest) and the count."""
    system, config = tfm_and_tests()
    pid = _defines(render_headers(system, config)["psa_manifest/pid.h"])
    assert _value(pid["TFM_SP_PS"]) == 256
    assert _value(pid["TFM_SP_CRYPTO"]) == 259
    assert _value(pid["TFM_SP_IPC_SERVICE_TEST"]) == 3003
    assert _value(pid["TFM_MAX_USER_PARTITIONS"]) == len(system.partitions)
    assert [n for n in pid if n.startswith("TFM_SP_")] == [
        p.name for p in system.partitions if p.name.startswith("TFM_SP_")
    ]


def test_partition_headers_pin_signals_and_prototypes(
    tfm_and_tests: Callable[..., tuple[SystemManifest, Any]],
) -> None:
    """A partition's header has its model, IPC service signals, IRQ signals and FLIH prototype."""
    system, config = tfm_and_tests()
    headers = render_headers(system, config)
    flih = headers["psa_manifest/tfm_flih_test_service.h"]
    values = _defines(flih)
    assert values["TFM_SP_FLIH_TEST_MODEL_IPC"] == "1"
    assert values["TFM_SP_FLIH_TEST_MODEL_SFN"] == "0"
    assert _value(values["TFM_FLIH_TEST_CASE_SIGNAL"]) == 0x10
    assert _value(values["TFM_TIMER0_IRQ_SIGNAL"]) == 0x80000000
    assert "psa_flih_result_t tfm_timer0_irq_flih(void);" in flih
    ipc = _defines(headers["psa_manifest/tfm_ipc_service_test.h"])
    assert _value(ipc["IPC_SERVICE_TEST_MMIOVEC_SIGNAL"]) == 0x400  # the seventh service
    crypto = headers["psa_manifest/tfm_crypto.h"]
    assert _defines(crypto)["TFM_SP_CRYPTO_MODEL_SFN"] == "1"
    assert "psa_status_t tfm_crypto_sfn(const psa_msg_t *msg);" in crypto
    assert "_SIGNAL" not in crypto  # SFN services have no signal macros in TF-M's header


def test_dual_model_partition_follows_the_backend(
    tfm_and_tests: Callable[..., tuple[SystemManifest, Any]], corpus: Path, tfm_list: Path
) -> None:
    """A ``model: dual`` partition's header says IPC under IPC and SFN (with _sfn) under SFN."""
    lists = [tfm_list]
    sfn_test = (
        (corpus / "tf-m-tests" / "tests_reg" / "test" / "secure_fw" / "suites" / "spm" / "irq")
        / "service"
        / "tfm_slih_test_service"
        / "tfm_slih_test_service.yaml"
    )
    config = _conditionals(*lists)
    for backend, model in (("ipc", "IPC"), ("sfn", "SFN")):
        system = load_system_manifest([*lists, sfn_test], backend=backend, config=config)
        text = render_headers(system, config)["psa_manifest/tfm_slih_test_service.h"]
        assert _defines(text)[f"TFM_SP_SLIH_TEST_MODEL_{model}"] == "1"
        assert ("tfm_slih_test_case_sfn" in text) == (model == "SFN")
        assert ("TFM_SLIH_TEST_CASE_SIGNAL" in text) == (model == "IPC")


def test_config_impl_and_framework_feature_follow_the_configuration(
    tfm_and_tests: Callable[..., tuple[SystemManifest, Any]],
) -> None:
    """config_impl.h says the backend and API switches; framework_feature.h the isolation level."""
    system, config = tfm_and_tests(isolation=3)
    headers = render_headers(system, config)
    impl = _defines(headers["config_impl.h"])
    assert impl["CONFIG_TFM_SPM_BACKEND_IPC"] == "1"
    assert impl["CONFIG_TFM_SPM_BACKEND_SFN"] == "0"
    assert impl["CONFIG_TFM_CONNECTION_BASED_SERVICE_API"] == "1"
    assert impl["CONFIG_TFM_FLIH_API"] == "1"
    assert impl["CONFIG_TFM_SLIH_API"] == "1"
    assert impl["CONFIG_TFM_MMIO_REGION_ENABLE"] == "1"
    feature = _defines(headers["psa/framework_feature.h"])
    assert feature["PSA_FRAMEWORK_ISOLATION_LEVEL"] == "3"
    assert feature["PSA_FRAMEWORK_HAS_MM_IOVEC"] == "1"  # the tests' MM-IOVEC services


def test_sfn_config_impl_sums_stack_sizes(tfm_list: Path) -> None:
    """Under SFN, config_impl.h has TF-M's total stack expression, with config values substituted."""
    tfm = tfm_list
    config = {flag: "0" for flag in _conditionals(tfm)}
    config |= {"TFM_PARTITION_CRYPTO": "1", "TFM_PARTITION_INTERNAL_TRUSTED_STORAGE": "1"}
    config["CRYPTO_STACK_SIZE"] = "0x1800"
    system = load_system_manifest(tfm, backend="sfn", config=config)
    impl = _defines(render_headers(system, config)["config_impl.h"])
    assert impl["CONFIG_TFM_SPM_BACKEND_SFN"] == "1"
    assert impl["CONFIG_TFM_CONNECTION_BASED_SERVICE_API"] == "0"
    assert "(0x1800)" in impl["CONFIG_TFM_TOTAL_STACK_SIZE"]
    assert "ITS_STACK_SIZE" in impl["CONFIG_TFM_TOTAL_STACK_SIZE"]  # left to the includer


@pytest.mark.parametrize("backend", ["ipc", "sfn"])
def test_every_generated_header_compiles_with_its_guard(
    tmp_path: Path, corpus: Path, tfm_list: Path, backend: str
) -> None:
    """Each generated header compiles alone, included twice, as C and C++, under its own guard."""
    lists = [tfm_list]
    if backend == "ipc":
        lists.append(
            corpus
            / "tf-m-tests"
            / "tests_reg"
            / "test"
            / "secure_fw"
            / "tfm_test_manifest_list.yaml"
        )
    config = _conditionals(*lists)
    system = load_system_manifest(lists, backend=backend, config=config)
    out = tmp_path / "gen"
    paths = write_headers(system, out, config)
    assert len(paths) == len(system.partitions) + 4
    guards = set()
    for path in paths:
        text = path.read_text()
        guard = re.search(r"^#ifndef (\w+)\n#define \1$", text, re.MULTILINE)
        assert guard is not None, f"{path} has no include guard"
        assert text.rstrip().endswith(f"#endif /* {guard.group(1)} */")
        guards.add(guard.group(1))
        relative = path.relative_to(out).as_posix()
        for cxx in (False, True):
            source = tmp_path / ("t.cc" if cxx else "t.c")
            source.write_text(f'#include "{relative}"\n#include "{relative}"\nint x;\n')
            done = compile_check(source, [out], "-Wall", "-Werror", cxx=cxx)
            assert done.returncode == 0, f"{relative}:\n{done.stderr}"
    assert len(guards) == len(paths)  # no two headers share a guard


def test_all_generated_headers_compile_together(
    tmp_path: Path, tfm_list: Path, tests_list: Path
) -> None:
    """sid.h, pid.h and every partition header can be included in one translation unit."""
    lists = [
        tfm_list,
        tests_list,
    ]
    config = _conditionals(*lists)
    system = load_system_manifest(lists, config=config)
    out = tmp_path / "gen"
    paths = write_headers(system, out, config)
    source = tmp_path / "all.c"
    source.write_text("".join(f'#include "{p.relative_to(out).as_posix()}"\n' for p in paths))
    done = compile_check(source, [out], "-Wall", "-Werror")
    assert done.returncode == 0, done.stderr


def test_output_is_deterministic(
    tmp_path: Path, tfm_and_tests: Callable[..., tuple[SystemManifest, Any]]
) -> None:
    """The same system gives the same bytes, and rewriting leaves unchanged files untouched."""
    system, config = tfm_and_tests()
    again, _ = tfm_and_tests()
    assert render_headers(system, config) == render_headers(again, config)
    paths = write_headers(system, tmp_path, config)
    before = {p: p.stat().st_mtime_ns for p in paths}
    write_headers(again, tmp_path, config)
    assert {p: p.stat().st_mtime_ns for p in paths} == before


def test_cli_headers_writes_what_render_headers_gives(tmp_path: Path, tfm_list: Path) -> None:
    """``psaspm headers`` with -c/-D/--backend writes exactly the rendered files."""
    tfm = tfm_list
    flags = _conditionals(tfm)
    header = tmp_path / "config.h"
    header.write_text("".join(f"#define {flag} 1\n" for flag in flags))
    out = tmp_path / "out"
    options = ["-c", str(header), "-D", "TFM_PARTITION_PLATFORM=0", "--backend", "sfn"]
    status = main(["headers", str(tfm), *options, "-o", str(out)])
    assert status == 0
    config = dict(flags) | {"TFM_PARTITION_PLATFORM": "0"}
    expected = render_headers(load_system_manifest(tfm, backend="sfn", config=config), config)
    written = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.h")}
    assert written == expected
    assert "psa_manifest/tfm_platform.h" not in written


def test_cli_headers_bad_input_exits_2(tmp_path: Path, tfm_list: Path, capsys: Any) -> None:
    """A conditional the config does not define is exit 2 with one error line; nothing written."""
    tfm = tfm_list
    out = tmp_path / "out"
    assert main(["headers", str(tfm), "-o", str(out)]) == 2
    assert "TFM_PARTITION_NS_AGENT_MAILBOX" in capsys.readouterr().err
    assert not out.exists()


def test_cli_headers_unknown_code_name_exits_2(tmp_path: Path, capsys: Any) -> None:
    """``headers --code`` takes the same code options as run: a name that is no partition of
    the system is exit 2 naming it, and nothing is written."""
    echo = Path(__file__).resolve().parents[2] / "examples" / "echo" / "echo_service.yaml"
    out = tmp_path / "out"
    assert main(["headers", str(echo), "-o", str(out), "--code", "NOPE=x.py"]) == 2
    assert "NOPE" in capsys.readouterr().err
    assert not out.exists()


def test_same_manifest_basename_twice_is_refused(tmp_path: Path) -> None:
    """Two partitions whose manifests share a basename would clash in psa_manifest/: an error."""
    for folder, name, sid in (("a", "PART_A", "0xF001"), ("b", "PART_B", "0xF002")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "service.yaml").write_text(
            yaml.safe_dump(
                {
                    "psa_framework_version": 1.1,
                    "name": name,
                    "type": "APPLICATION-ROT",
                    "priority": "NORMAL",
                    "model": "SFN",
                    "stack_size": "0x200",
                    "services": [{"name": f"{name}_SVC", "sid": sid, "connection_based": False}],
                }
            )
        )
    system = load_system_manifest(
        [tmp_path / "a" / "service.yaml", tmp_path / "b" / "service.yaml"]
    )
    assert partition_header_name(system.partitions[0]) == "psa_manifest/service.h"
    with pytest.raises(ConfigError, match=r"PART_B would generate psa_manifest/service\.h"):
        render_headers(system)


def test_cli_cflags_prints_the_include_flag(capsys: Any) -> None:
    """``psaspm cflags`` prints -I for the folder that holds psa/client.h and psa/service.h."""
    assert main(["cflags"]) == 0
    words = shlex.split(capsys.readouterr().out)
    assert words == [f"-I{INCLUDE_DIR}"]
    assert (INCLUDE_DIR / "psa" / "client.h").is_file()
    assert (INCLUDE_DIR / "psaspm" / "hal.h").is_file()
    assert main(["cflags", "--client"]) == 0
    assert shlex.split(capsys.readouterr().out) == words


def test_cli_headers_unwritable_output_exits_2(tmp_path: Path, capsys: Any) -> None:
    """An output folder that cannot be made is exit 2 naming the header it could not write."""
    blocker = tmp_path / "file"
    blocker.write_text("in the way\n")
    manifest = Path(__file__).resolve().parents[2] / "examples" / "echo" / "echo_service.yaml"
    assert main(["headers", str(manifest), "-o", str(blocker)]) == 2
    assert "cannot write generated header" in capsys.readouterr().err
