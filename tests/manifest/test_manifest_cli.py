"""The psaspm CLI (layout, check), config headers, and the layout/constants dictionaries."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from psaspm.cli import main
from psaspm.errors import ConfigError
from psaspm.manifest import (
    constants_dict,
    layout_dict,
    load_system_manifest,
    parse_config_header,
)

AllOn = Callable[..., dict[str, object]]
Factory = Callable[..., dict[str, Any]]
Write = Callable[..., Path]


def _defines(config: dict[str, object]) -> list[str]:
    return [arg for flag in sorted(config) for arg in ("-D", f"{flag}={config[flag]}")]


def test_layout_json_equals_layout_dict(
    tfm_list: Path, all_on: AllOn, capsys: pytest.CaptureFixture[str]
) -> None:
    """`layout --json` prints json.dumps(layout_dict(system), indent=2)."""
    config = all_on(tfm_list)
    argv = ["layout", str(tfm_list), "--backend", "ipc", "--isolation", "2", "--json"]
    assert main(argv + _defines(config)) == 0
    printed = json.loads(capsys.readouterr().out)
    system = load_system_manifest(tfm_list, backend="ipc", isolation=2, config=config)
    assert printed == layout_dict(system)


def test_layout_dict_has_the_contract_shape(tfm_list: Path, all_on: AllOn) -> None:
    """layout_dict gives CONTRACT section 3's keys and values (ITS as the example)."""
    system = load_system_manifest(tfm_list, isolation=2, config=all_on(tfm_list))
    layout = layout_dict(system)
    assert layout["backend"] == "ipc" and layout["isolation"] == 2
    assert layout["config_impl"] == {
        "connection_based_service_api": False,
        "flih_api": False,
        "slih_api": True,
        "mmio_region_enable": False,
    }
    its = layout["partitions"][2]
    assert its == {
        "name": "TFM_SP_ITS",
        "pid": 257,
        "model": "SFN",
        "type": "PSA-ROT",
        "priority": "NORMAL",
        "load_order": 7937,
        "ns_agent": False,
        "psa_framework_version": "1.1",
        "services": [
            {
                "name": "TFM_INTERNAL_TRUSTED_STORAGE_SERVICE",
                "sid": 112,
                "version": 1,
                "version_policy": "STRICT",
                "non_secure_clients": True,
                "connection_based": False,
                "mm_iovec": True,
                "stateless_handle": 0x40000102,
                "signal": 1,
            }
        ],
        "irqs": [],
    }
    agent = layout["partitions"][0]
    assert agent["irqs"] == [
        {
            "source": "MAILBOX_IRQ",
            "name": "MAILBOX_INTERRUPT_SIGNAL",
            "signal": 0x80000000,
            "handling": "SLIH",
        }
    ]
    json.dumps(layout)


def test_layout_keeps_ipc_signals_under_sfn_backend(tfm_list: Path, all_on: AllOn) -> None:
    """Under the SFN backend the layout still shows the signal bit TF-M assigns."""
    system = load_system_manifest(tfm_list, backend="sfn", config=all_on(tfm_list))
    agent = layout_dict(system)["partitions"][0]
    assert agent["model"] == "IPC" and agent["services"][0]["signal"] == 0x10


def test_constants_dict_names(tfm_list: Path, all_on: AllOn) -> None:
    """constants_dict has <SVC>_SID/_VERSION/_HANDLE/_SIGNAL, IRQ signals and partition pids."""
    constants = constants_dict(load_system_manifest(tfm_list, config=all_on(tfm_list)))
    assert constants["TFM_CRYPTO_SID"] == 0x80
    assert constants["TFM_CRYPTO_VERSION"] == 1
    assert constants["TFM_CRYPTO_HANDLE"] == 0x40000100
    assert constants["TFM_CRYPTO_SIGNAL"] == 1
    assert constants["NS_AGENT_MBOX_PROCESS_NEW_MSG_SIGNAL"] == 0x10
    assert constants["MAILBOX_INTERRUPT_SIGNAL"] == 0x80000000
    assert constants["TFM_SP_FWU"] == 271


def test_constants_dict_omits_handle_of_connection_based(
    write_json: Write, partition: Factory
) -> None:
    """A connection-based service has no <SVC>_HANDLE constant."""
    constants = constants_dict(load_system_manifest(write_json(partition())))
    assert "TEST_SVC_HANDLE" not in constants and constants["TEST_SVC_SIGNAL"] == 0x10


def test_layout_table_lists_partitions(
    tfm_list: Path, all_on: AllOn, capsys: pytest.CaptureFixture[str]
) -> None:
    """`layout` without --json prints readable tables of partitions, services and IRQs."""
    assert main(["layout", str(tfm_list), *_defines(all_on(tfm_list))]) == 0
    out = capsys.readouterr().out
    assert "TFM_SP_CRYPTO" in out and "0x40000100" in out and "MAILBOX_IRQ" in out
    assert out.index("TFM_SP_ITS") < out.index("TFM_SP_PS ")  # load order: ITS before PS


def test_check_ok_summary(
    tfm_list: Path, all_on: AllOn, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` prints a one-line summary and exits 0 for a good system."""
    argv = ["check", str(tfm_list), "--isolation", "2", *_defines(all_on(tfm_list))]
    assert main(argv) == 0
    assert (
        capsys.readouterr().out
        == "ok: 7 partitions, 7 services, 1 irqs (backend ipc, isolation 2)\n"
    )


def test_check_prints_every_problem(
    write_json: Write, partition: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` prints every problem, one per line, and exits 2."""
    path = write_json(partition(type="X", priority="Y"))
    assert main(["check", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("psaspm: error: ") for line in lines)
    assert "type" in lines[0] and "priority" in lines[1]


def test_config_error_is_one_line_without_traceback(
    write_json: Write, partition: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ConfigError in any command is one stderr line, exit 2, no traceback."""
    path = write_json(partition())
    assert main(["layout", str(path), "--backend", "sfn"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("psaspm: error: SFN backend does not support IPC Partitions")
    assert "Traceback" not in captured.err


def test_layout_manifest_error_is_one_line(
    write_json: Write, partition: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    """`layout` reports bad manifests as one line naming the first problem and the count."""
    path = write_json(partition(type="X", priority="Y"))
    assert main(["layout", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(and 1 more problems" in err


def test_minus_d_alone_means_on(
    write_json: Write, partition: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    """-D NAME alone sets the flag to 1; -D NAME=0 switches it off."""
    write_json(partition(), "sp.yaml")
    listed = write_json(
        {"type": "manifest_list", "manifest_list": [{"manifest": "sp.yaml", "conditional": "F"}]},
        "list.yaml",
    )
    assert main(["check", str(listed), "-D", "F"]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 partitions")
    assert main(["check", str(listed), "-D", "F=0"]) == 0
    assert capsys.readouterr().out.startswith("ok: 0 partitions")


def test_path_option_expands_variables(
    ff_list: Path,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--path VAR=DIR gives ${VAR} in manifest paths."""
    monkeypatch.delenv("PSA_ARCH_TESTS_PATH", raising=False)
    argv = ["check", str(ff_list), "--path", f"PSA_ARCH_TESTS_PATH={corpus / 'psa-arch-tests'}"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("ok: 3 partitions, 12 services, 1 irqs")


def test_parse_config_header(tmp_path: Path) -> None:
    """Only #define lines count; a bare #define maps to ""."""
    header = tmp_path / "config.h"
    header.write_text(
        "/* comment */\n#define TFM_ISOLATION_LEVEL 2\n#define CONFIG_TFM_SPM_BACKEND IPC\n"
        "#define TFM_PARTITION_CRYPTO\n  #undef X\n#define WITH_SPACES a b\n",
        encoding="utf-8",
    )
    assert parse_config_header(header) == {
        "TFM_ISOLATION_LEVEL": "2",
        "CONFIG_TFM_SPM_BACKEND": "IPC",
        "TFM_PARTITION_CRYPTO": "",
        "WITH_SPACES": "a b",
    }


def test_config_header_sets_backend_isolation_and_flags(
    tfm_list: Path, all_on: AllOn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-c reads isolation, backend and conditionals; CLI flags override the header."""
    lines = [f"#define {flag} 1" for flag in all_on(tfm_list)]
    lines += [
        "#define TFM_ISOLATION_LEVEL 1",
        "#define CONFIG_TFM_SPM_BACKEND SFN",
        "#define TFM_PARTITION_FIRMWARE_UPDATE",
    ]  # bare define: off
    header = tmp_path / "manifest_config.h"
    header.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["check", str(tfm_list), "-c", str(header)]) == 0
    assert (
        capsys.readouterr().out
        == "ok: 6 partitions, 6 services, 1 irqs (backend sfn, isolation 1)\n"
    )
    argv = ["check", str(tfm_list), "-c", str(header), "--backend", "ipc", "--isolation", "3"]
    assert main(argv) == 0
    assert capsys.readouterr().out.endswith("(backend ipc, isolation 3)\n")


def test_bad_header_isolation_is_a_config_error(
    tfm_list: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A TFM_ISOLATION_LEVEL outside 1..3 in a header is a one-line config error."""
    header = tmp_path / "c.h"
    header.write_text("#define TFM_ISOLATION_LEVEL 7\n", encoding="utf-8")
    assert main(["check", str(tfm_list), "-c", str(header)]) == 2
    assert "isolation level 7 is not 1, 2 or 3" in capsys.readouterr().err


def test_missing_config_header_is_a_config_error(tmp_path: Path) -> None:
    """An unreadable config header is a ConfigError."""
    with pytest.raises(ConfigError, match="cannot read config header"):
        parse_config_header(tmp_path / "nope.h")


def test_python_dash_m_runs_the_cli(write_json: Write, partition: Factory) -> None:
    """`python -m psaspm check` runs the same CLI."""
    path = write_json(partition())
    result = subprocess.run(
        [sys.executable, "-m", "psaspm", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("ok: 1 partitions, 1 services, 0 irqs")


def test_layout_without_irqs_prints_no_irq_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A system without interrupts gets no (empty) IRQ table."""
    manifest = tmp_path / "p.yaml"
    manifest.write_text(
        '{"psa_framework_version": 1.1, "name": "TFM_SP_P", "type": "PSA-ROT", '
        '"priority": "NORMAL", "model": "SFN", "stack_size": "0x400", "services": '
        '[{"name": "P", "sid": "0x100", "connection_based": false}]}'
    )
    assert main(["layout", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "TFM_SP_P" in out and "IRQs" not in out
