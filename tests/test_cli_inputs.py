"""The command line's inputs: --code, partition code checks, tracebacks, exit codes, warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import psaspm
from psaspm.cli import main

pytestmark = pytest.mark.usefixtures("demo_flash")

ROOT = Path(__file__).resolve().parent.parent
STATELESS = str(ROOT / "examples" / "stateless" / "checksum.yaml")
STATELESS_APP = str(ROOT / "examples" / "stateless" / "ns_app.py")

SFN_MANIFEST = """\
psa_framework_version: 1.1
name: {name}
type: PSA-ROT
priority: NORMAL
model: SFN
stack_size: 0x200
services:
{services}"""
SERVICE = """\
  - name: {name}
    sid: {sid}
    non_secure_clients: true
    connection_based: false
    version: 1
"""


def _manifest(folder: Path, stem: str, name: str, services: tuple[str, ...] = ("SVC_A",)) -> Path:
    """An SFN partition manifest ``stem.yaml`` with stateless services, in ``folder``."""
    body = "".join(SERVICE.format(name=svc, sid=hex(0xA00 + i)) for i, svc in enumerate(services))
    path = folder / f"{stem}.yaml"
    path.write_text(SFN_MANIFEST.format(name=name, services=body), encoding="utf-8")
    return path


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def _ns(tmp_path: Path, body: str = "    print('status', ns.call(0x40000100))\n") -> str:
    return _write(tmp_path / "ns.py", "def main(ns):\n" + body)


OK_SFN = "def svc_a_sfn(msg):\n    return 0\n"


# --------------------------------------------------------------------------- tracebacks
def test_run_prints_the_partition_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When partition code raises, psaspm run prints the panic line, then the traceback with the
    partition's own file and line, on stderr; --json carries it as panic.traceback."""
    manifest = _manifest(tmp_path, "bad", "TFM_SP_BAD")
    code = _write(tmp_path / "bad.py", "def svc_a_sfn(msg):\n    x = 0\n    return 1 // x\n")
    assert main(["run", str(manifest), "--ns", _ns(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "psaspm: panic: TFM_SP_BAD" in err and "ZeroDivisionError" in err
    tail = err[err.index("psaspm: panic:") :]
    assert f'File "{code}", line 3' in tail and "return 1 // x" in tail
    assert main(["run", str(manifest), "--ns", _ns(tmp_path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert f'File "{code}", line 3' in data["panic"]["traceback"]


def test_psa_panic_has_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A panic PSA itself raised (psa_panic) has no traceback: --json says null."""
    manifest = _manifest(tmp_path, "halt", "TFM_SP_HALT")
    _write(
        tmp_path / "halt.py",
        "from psaspm.psa import psa_panic\n\ndef svc_a_sfn(msg):\n    psa_panic()\n",
    )
    assert main(["run", str(manifest), "--ns", _ns(tmp_path), "--json"]) == 1
    panic = json.loads(capsys.readouterr().out)["panic"]
    assert panic["api"] == "psa_panic" and panic["traceback"] is None


def test_import_error_in_partition_code_keeps_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A partition file that raises while it is imported is one error line (exit 2) naming the
    partition and the file, line and source of the failure, without psaspm's own frames."""
    manifest = _manifest(tmp_path, "broken", "TFM_SP_BROKEN")
    code = _write(tmp_path / "broken.py", "import os\n\nLIMIT = int(os.sep * 2)\n")
    assert main(["run", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("psaspm: error: TFM_SP_BROKEN: importing")
    assert f"(at {code}:3 in <module>: LIMIT = int(os.sep * 2))" in err
    assert "psaspm/system.py" not in err and "importlib" not in err


def test_syntax_error_in_partition_code_names_the_line(tmp_path: Path) -> None:
    """A syntax error in partition code is a ConfigError naming the file and the line."""
    manifest = _manifest(tmp_path, "typo", "TFM_SP_TYPO")
    _write(tmp_path / "typo.py", "def svc_a_sfn(msg):\n    return (\n")
    system = psaspm.load(manifest)
    with pytest.raises(psaspm.ConfigError, match=r"SyntaxError: .*typo\.py, line 2"):
        system.boot()


# --------------------------------------------------------------------------- --code
def test_code_option_runs_code_kept_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--code NAME=FILE gives a partition code that is not beside its manifest, for run, compare
    and check."""
    manifest = str(_manifest(tmp_path, "elsewhere", "TFM_SP_ELSEWHERE"))
    code = _write(tmp_path / "src" / "impl.py", OK_SFN)
    ns = _ns(tmp_path)
    option = ["--code", f"TFM_SP_ELSEWHERE={code}"]
    assert main(["run", manifest, "--ns", ns, "--quiet", *option]) == 0
    assert capsys.readouterr().out == "status 0\n"
    assert main(["check", manifest, *option]) == 0
    assert capsys.readouterr().err == ""
    assert main(["compare", manifest, "--ns", ns, "--json", *option]) == 0
    runs = json.loads(capsys.readouterr().out)["configurations"]
    assert [r["status"] for r in runs] == ["ok"] * 4


def test_code_option_for_an_unknown_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--code naming no partition of the system is an error (exit 2) naming it, in every
    command that takes --code."""
    manifest = str(_manifest(tmp_path, "sp", "TFM_SP_ONE"))
    _write(tmp_path / "sp.py", OK_SFN)
    code = _write(tmp_path / "other.py", OK_SFN)
    option = ["--code", f"TFM_SP_TYPO={code}"]
    for argv in (
        ["run", manifest],
        ["check", manifest],
        ["compare", manifest, "--ns", _ns(tmp_path)],
    ):
        assert main([*argv, *option]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, argv
        assert "'TFM_SP_TYPO': no such partition in this system (partitions: TFM_SP_ONE)" in err


def test_serve_refuses_code_for_an_unknown_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve takes --code too: an unknown partition name is exit 2 before anything listens."""
    code = _write(tmp_path / "other.py", OK_SFN)
    socket = tmp_path / "spe.sock"
    argv = ["serve", STATELESS, "--listen", f"unix:{socket}", "--code", f"TFM_SP_TYPO={code}"]
    assert main(argv) == 2
    assert "'TFM_SP_TYPO': no such partition" in capsys.readouterr().err
    assert not socket.exists()


def test_code_for_a_disabled_partition_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Code given for a partition that a conditional disabled is ignored, not refused."""
    _manifest(tmp_path, "on", "TFM_SP_ON")
    _write(tmp_path / "on.py", OK_SFN)
    _manifest(tmp_path, "off", "TFM_SP_OFF", ("SVC_B",))
    listed = _write(
        tmp_path / "list.yaml",
        "type: manifest_list\nmanifest_list:\n  - manifest: on.yaml\n"
        "  - manifest: off.yaml\n    conditional: WITH_OFF\n",
    )
    code = _write(tmp_path / "off_impl.py", "def svc_b_sfn(msg):\n    return 0\n")
    assert main(["run", listed, "-D", "WITH_OFF=0", "--code", f"TFM_SP_OFF={code}", "-q"]) == 0
    system = psaspm.load(listed, config={"WITH_OFF": "0"}, code={"TFM_SP_OFF": code})
    system.boot()
    assert system.state == "running"
    with pytest.raises(psaspm.ConfigError, match="'TFM_SP_NONE': no such partition"):
        psaspm.load(listed, config={"WITH_OFF": "0"}, code={"TFM_SP_NONE": code})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("part.c", "C source part.c not found"),
        ("a.c,b.c", "C source a.c not found"),
        ("part.so", "cannot read shared object part.so"),
        ("a.py,b.py", "expected one .py file"),
        ("part.txt", "expected one .py file"),
        ("x.so,b.c", "a prebuilt .so is used alone"),
        ("", "expected PARTITION=FILE[,FILE...]"),
    ],
)
def test_code_option_file_kinds(
    value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--code takes one .py file, C sources or one .so; a missing file or another mix is
    refused clearly, naming the file (exit 2)."""
    manifest = str(_manifest(tmp_path, "sp", "TFM_SP_ONE"))
    assert main(["run", manifest, "--code", f"TFM_SP_ONE={value}"]) == 2
    assert message in capsys.readouterr().err


def test_load_checks_c_sources_at_boot(tmp_path: Path) -> None:
    """load(code=...) takes a list of .c paths; a missing one is a ConfigError naming the
    partition and the file when the system boots."""
    system = psaspm.load(STATELESS, code={"TFM_SP_EXAMPLE_CHECKSUM": ["crc.c", "table.c"]})
    with pytest.raises(psaspm.ConfigError, match=r"CHECKSUM.*crc\.c"):
        system.boot()


# --------------------------------------------------------------------------- check
def test_check_warns_about_missing_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check with valid manifests but no code file: ok (exit 0) plus a warning naming the
    partition and the file it looked for."""
    manifest = _manifest(tmp_path, "nocode", "TFM_SP_NOCODE")
    assert main(["check", str(manifest)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ok: 1 partitions")
    assert captured.err.startswith("psaspm: warning: TFM_SP_NOCODE: no partition code:")
    assert str(tmp_path / "nocode.py") in captured.err


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("def other_sfn(msg):\n    return 0\n", "has no function svc_a_sfn()"),
        ("svc_a_sfn = 3\n", "svc_a_sfn in the partition code is not a function"),
        ("import no_such_module_here\n", "ModuleNotFoundError"),
    ],
)
def test_check_rejects_code_that_cannot_run(
    code: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check imports each partition's code: code that does not import or lacks a function the
    manifest names is an error naming the partition (exit 2)."""
    manifest = _manifest(tmp_path, "sp", "TFM_SP_ONE")
    _write(tmp_path / "sp.py", code)
    assert main(["check", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("psaspm: error: TFM_SP_ONE: ") and message in err


def test_check_looks_for_every_function_of_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's code has every function its manifests name: check is ok without warnings."""
    demo = str(ROOT / "examples" / "demo" / "demo_manifest_list.yaml")
    assert main(["check", demo]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("text", ["", "# a manifest, one day\n"])
def test_empty_manifest_is_bad_input(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty or comment-only manifest is not a manifest: check, layout and run exit 2
    naming the file."""
    path = _write(tmp_path / "empty.yaml", text)
    for command in ("check", "layout", "run"):
        assert main([command, path]) == 2
        assert f"{Path(path).resolve()}: empty document" in capsys.readouterr().err


# --------------------------------------------------------------------------- exit codes
def test_compare_with_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """compare with a bad manifest, or with missing partition code, prints one error line and
    exits 2 before running anything (no table)."""
    bad = _write(tmp_path / "bad.yaml", "psa_framework_version: 1.1\nname: X\n")
    ns = _ns(tmp_path, "    print('ran')\n")
    assert main(["compare", bad, "--ns", ns]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("psaspm: error: ")
    nocode = str(_manifest(tmp_path, "nocode", "TFM_SP_NOCODE"))
    assert main(["compare", nocode, "--ns", ns]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "TFM_SP_NOCODE: no partition code" in captured.err


def test_compare_still_skips_a_configuration_it_cannot_build(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A configuration only some of the inputs cannot be built in is skipped, not bad input."""
    demo = str(ROOT / "examples" / "demo" / "demo_manifest_list.yaml")
    assert main(["compare", demo, "--ns", _write_app(), "--json"]) == 0
    statuses = [r["status"] for r in json.loads(capsys.readouterr().out)["configurations"]]
    assert statuses == ["skipped", "ok", "ok", "ok"]


def _write_app() -> str:
    return str(ROOT / "examples" / "demo" / "ns_app.py")


@pytest.mark.parametrize("where", ["missing-dir/trace.json", "."])
def test_unwritable_trace_is_checked_first(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --trace path that cannot be written is bad input: exit 2, one line, and the script
    never runs."""
    ns = _ns(tmp_path, "    print('ran')\n")
    trace = str(tmp_path / where)
    assert main(["run", STATELESS, "--ns", ns, "--trace", trace]) == 2
    captured = capsys.readouterr()
    assert "ran" not in captured.out
    assert captured.err.startswith(f"psaspm: error: --trace {trace}: ")
    assert captured.err.count("\n") == 1


def test_failed_load_writes_no_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """When the system cannot be loaded, or boot finds its code missing, run exits 2 and leaves
    no trace file behind; a run that panics at boot still writes its trace."""
    trace = tmp_path / "trace.json"
    bad = _write(tmp_path / "bad.yaml", "psa_framework_version: 1.1\nname: X\n")
    assert main(["run", bad, "--trace", str(trace)]) == 2
    assert not trace.exists()
    nocode = str(_manifest(tmp_path, "nocode", "TFM_SP_NOCODE"))
    assert main(["run", nocode, "--trace", str(trace)]) == 2  # loads, but cannot boot
    assert not trace.exists()
    failing = str(_manifest(tmp_path, "initfail", "TFM_SP_INITFAIL"))
    text = (
        Path(failing)
        .read_text(encoding="utf-8")
        .replace("services:", "entry_init: init\nservices:")
    )
    Path(failing).write_text(text, encoding="utf-8")
    _write(tmp_path / "initfail.py", "def init():\n    return -1\n\n" + OK_SFN)
    assert main(["run", failing, "--trace", str(trace)]) == 1  # a panic at boot
    assert json.loads(trace.read_text())["traceEvents"]


@pytest.mark.parametrize(
    "signature", ["main()", "main(*, ns)", "main(ns, system, extra)", "main(a, b, c=1, *, d)"]
)
def test_main_that_cannot_take_the_client(
    signature: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An NS script whose main cannot be called as main(ns) or main(ns, system) is bad input:
    exit 2, naming both expected signatures, before the system boots."""
    script = _write(tmp_path / "ns.py", f"def {signature}:\n    print('ran')\n")
    assert main(["run", STATELESS, "--ns", script]) == 2
    captured = capsys.readouterr()
    assert "def main(ns) or def main(ns, system)" in captured.err
    assert "ran" not in captured.out and "Traceback" not in captured.err


@pytest.mark.parametrize("signature", ["main(ns)", "main(ns, system)", "main(*args)"])
def test_main_signatures_that_are_accepted(
    signature: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """main(ns), main(ns, system) and main(*args) are all callable with the NS client."""
    script = _write(tmp_path / "ns.py", f"def {signature}:\n    print('ran')\n")
    assert main(["run", STATELESS, "--ns", script, "--quiet"]) == 0
    assert capsys.readouterr().out == "ran\n"


def test_closed_pipe_is_a_quiet_exit() -> None:
    """`psaspm ... --json | head` that stops reading: psaspm exits without a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before psaspm writes
    try:
        result = subprocess.run(
            [sys.executable, "-m", "psaspm", "layout", STATELESS, "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 1


def test_compare_help_does_not_offer_backend_or_isolation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """compare --help lists no --backend/--isolation (compare refuses them); run --help does."""
    assert main(["compare", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--backend" not in text and "--isolation" not in text and "--code" in text
    assert main(["run", "--help"]) == 0
    assert "--backend" in capsys.readouterr().out


def test_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    """psaspm --version prints the package's version and exits 0."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"psaspm {psaspm.__version__}\n"


# --------------------------------------------------------------------------- warnings
def test_async_reply_signal_warning_in_check_layout_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SFN partition's third service (signal 0x4 under IPC, TF-M's ASYNC_MSG_REPLY) gets a
    warning on stderr from check, layout and run, naming the partition, the service and the TF-M
    issue; the command still succeeds, and under the SFN backend there is no warning."""
    manifest = str(_manifest(tmp_path, "three", "TFM_SP_THREE", ("ONE", "TWO", "THREE")))
    _write(
        tmp_path / "three.py",
        "".join(f"def {n}_sfn(msg):\n    return 0\n\n" for n in ("one", "two", "three")),
    )
    for argv in (["check", manifest], ["layout", manifest, "--json"], ["run", manifest, "-q"]):
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert err.count("psaspm: warning: ") == 1, argv
        assert "partition TFM_SP_THREE: services[2] THREE" in err
        assert "trusted-firmware-m issue #48" in err
    assert main(["check", manifest, "--backend", "sfn"]) == 0
    assert capsys.readouterr().err == ""
