"""psaspm run and psaspm compare: NS scripts, summaries, JSON, exit codes, footprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psaspm import load
from psaspm.cli import main
from psaspm.manifest import load_system_manifest
from psaspm.runner import CONFIGURATIONS, footprint

pytestmark = pytest.mark.usefixtures("demo_flash")

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"
DEMO_LIST = str(DEMO / "demo_manifest_list.yaml")
DEMO_APP = str(DEMO / "ns_app.py")
STATELESS = str(ROOT / "examples" / "stateless" / "checksum.yaml")
STATELESS_APP = str(ROOT / "examples" / "stateless" / "ns_app.py")
ECHO = str(ROOT / "examples" / "echo" / "echo_service.yaml")


def _script(tmp_path: Path, body: str, name: str = "script.py") -> str:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_run_prints_script_output_and_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """psaspm run prints the NS script's own output, then a summary naming the backend, isolation
    level and interface with the run's counters (NS calls, interrupts, panics, time, ...)."""
    assert main(["run", DEMO_LIST, "--ns", DEMO_APP]) == 0
    out = capsys.readouterr().out
    assert "the FLIH counted 5 ticks" in out  # the script's own output
    assert "backend ipc, isolation 1 (cross-call interface)" in out
    for label in (
        "18 NS calls",
        "PSA calls",
        "messages",
        "context switches",
        "SVC entries 0",
        "boundary switches",
        "interrupts 6",
        "panics 0",
        "time",
    ):
        assert label in out


def test_run_stats_table(capsys: pytest.CaptureFixture[str]) -> None:
    """psaspm run --stats prints the statistics table, with the interface, per-NS-call figures and
    wall time."""
    assert main(["run", DEMO_LIST, "--ns", DEMO_APP, "--isolation", "2", "--stats"]) == 0
    out = capsys.readouterr().out
    assert "SVC interface" in out and "per NS call" in out and "wall time" in out


def test_run_json(capsys: pytest.CaptureFixture[str]) -> None:
    """psaspm run --json prints one JSON document (status, interface, counters, per-NS-call
    averages, footprint) with the script's output captured inside it, not mixed in."""
    assert main(["run", DEMO_LIST, "--ns", DEMO_APP, "--isolation", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "ok" and data["interface"] == "svc"
    assert data["ns_calls"] == 18
    assert data["stats"]["interrupts"] == 6 and data["stats"]["svc_entries"] > 0
    assert "FLIH counted 5 ticks" in data["output"]  # captured, not mixed into the JSON
    assert data["per_ns_call"]["messages"] == pytest.approx(data["stats"]["messages"] / 18)
    assert data["footprint"]["threads"] == 6


def test_run_main_with_one_parameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main(ns) gets only the NS client; the static handle is known to the script."""
    script = _script(
        tmp_path,
        "def main(ns):\n"
        "    out = bytearray(4)\n"
        "    print('status', ns.call(0x40000100, 0, [b'abc'], [out]), out.hex())\n",
    )
    assert main(["run", STATELESS, "--ns", script, "--backend", "sfn"]) == 0
    out = capsys.readouterr().out
    assert "status 0 352441c2" in out  # CRC-32 of b"abc", little-endian
    assert "backend sfn" in out and "1 NS calls" in out
    # --quiet: only what the script prints.
    assert main(["run", STATELESS, "--ns", script, "--backend", "sfn", "--quiet"]) == 0
    assert capsys.readouterr().out == "status 0 352441c2\n"


def test_run_without_script_boots_only(capsys: pytest.CaptureFixture[str]) -> None:
    """psaspm run without --ns only boots the system: it makes no NS call and exits 0."""
    assert main(["run", STATELESS]) == 0
    assert "0 NS calls" in capsys.readouterr().out


def test_run_panic_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A secure panic during psaspm run exits 1, names the partition and API on stderr, is counted
    in the summary and recorded in the trace, and gives status "panic" with --json."""
    partition = tmp_path / "bad.yaml"
    partition.write_text(
        "psa_framework_version: 1.1\nname: TFM_SP_BAD\ntype: PSA-ROT\npriority: NORMAL\n"
        "model: SFN\nstack_size: 0x200\nservices:\n  - name: BAD\n    sid: 0xB00\n"
        "    non_secure_clients: true\n    connection_based: false\n    stateless_handle: 1\n"
        "    version: 1\n",
        encoding="utf-8",
    )
    (tmp_path / "bad.py").write_text(
        "from psaspm.psa import psa_panic\n\ndef bad_sfn(msg):\n    psa_panic()\n",
        encoding="utf-8",
    )
    script = _script(tmp_path, "def main(ns):\n    ns.call(0x40000100)\n", "ns.py")
    trace = tmp_path / "panic.json"
    assert main(["run", str(partition), "--ns", script, "--trace", str(trace)]) == 1
    captured = capsys.readouterr()
    assert "psaspm: panic: TFM_SP_BAD in psa_panic" in captured.err
    assert "panics 1" in captured.out
    assert any(e.get("cat") == "panic" for e in json.loads(trace.read_text())["traceEvents"])
    assert main(["run", str(partition), "--ns", script, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "panic" and data["panic"]["partition"] == "TFM_SP_BAD"


def test_run_script_exception(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An exception raised by the NS script makes psaspm run exit 1, showing it on stderr, or with
    --json as status "error" with its message as the reason."""
    script = _script(tmp_path, "def main(ns):\n    raise ValueError('wrong result')\n")
    assert main(["run", STATELESS, "--ns", script]) == 1
    err = capsys.readouterr().err
    assert "ValueError: wrong result" in err and "the NS script raised" in err
    assert main(["run", STATELESS, "--ns", script, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "error" and "wrong result" in data["reason"]


def test_run_bad_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An NS script without main(ns), or a script file that does not exist, is a usage error: psaspm
    run exits 2."""
    script = _script(tmp_path, "x = 1\n")
    assert main(["run", STATELESS, "--ns", script]) == 2
    assert "needs a function main(ns)" in capsys.readouterr().err
    assert main(["run", STATELESS, "--ns", str(tmp_path / "missing.py")]) == 2


def test_run_trace_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """psaspm run --trace writes a trace file, says where, and names threads for NS, the SPM and the
    partitions."""
    trace = tmp_path / "demo.json"
    assert main(["run", DEMO_LIST, "--ns", DEMO_APP, "--trace", str(trace)]) == 0
    assert f"trace written to {trace}" in capsys.readouterr().out
    data = json.loads(trace.read_text())
    names = {e["args"]["name"] for e in data["traceEvents"] if e["name"] == "thread_name"}
    assert {"NS", "SPM", "TFM_SP_DEMO_ATTEST"} <= names


def test_compare_demo(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo needs the IPC backend: SFN is skipped with the reason, IPC L1-3 run."""
    code = main(["compare", DEMO_LIST, "--ns", DEMO_APP, "-D", "CRYPTO_STACK_SIZE=0x1800"])
    out = capsys.readouterr().out
    assert code == 0
    assert "SFN L1 skipped:" in out and "TFM_SP_DEMO_ATTEST" in out
    for label in ("IPC L1", "IPC L2", "IPC L3", "SVC entries / call", "wall time / call"):
        assert label in out
    # 0x680 + 0x1800 + 0xA00 + 0x400 partitions + 1024 NS agent + 256 idle
    assert "12672 B" in out and "unknown" not in out


def test_compare_json_and_unknown_stack_macro(capsys: pytest.CaptureFixture[str]) -> None:
    """compare --json reports every configuration in order (SFN skipped for the demo), an undefined
    CRYPTO_STACK_SIZE as unknown with no stack totals, and the same messages at each IPC level
    with SVC entries only above level 1."""
    assert main(["compare", DEMO_LIST, "--ns", DEMO_APP, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    configs = data["configurations"]
    assert [(c["backend"], c["isolation"]) for c in configs] == list(CONFIGURATIONS)
    assert configs[0]["status"] == "skipped" and "SFN backend" in configs[0]["reason"]
    for config in configs[1:]:
        assert config["status"] == "ok" and config["ns_calls"] == 18
        assert config["footprint"]["unknown"] == ["CRYPTO_STACK_SIZE"]
        assert config["footprint"]["stacks"] is None
        assert config["footprint"]["partition_stacks"]["TFM_SP_DEMO_CRYPTO"] is None
    # Same workload, same messages; only the SVC interface enters the SPM by SVC.
    assert {c["stats"]["messages"] for c in configs[1:]} == {configs[1]["stats"]["messages"]}
    assert configs[1]["stats"]["svc_entries"] == 0 and configs[2]["stats"]["svc_entries"] > 0


def test_compare_all_four(capsys: pytest.CaptureFixture[str]) -> None:
    """A system the SFN backend can run is compared in all four configurations, none skipped, the
    SFN one with its interface, shared stack and stack-local connections."""
    assert main(["compare", STATELESS, "--ns", STATELESS_APP, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "skipped" not in out
    assert "SFN interface" in out and "1024 B (shared)" in out and "stack-local" in out


def test_compare_repeat(capsys: pytest.CaptureFixture[str]) -> None:
    """compare --repeat N runs the NS script N times in each of the four configurations, and
    --repeat 0 is a usage error (exit 2)."""
    assert main(["compare", STATELESS, "--ns", STATELESS_APP, "--repeat", "3", "--json"]) == 0
    configs = json.loads(capsys.readouterr().out)["configurations"]
    assert [c["ns_calls"] for c in configs] == [9, 9, 9, 9]
    assert main(["compare", STATELESS, "--ns", STATELESS_APP, "--repeat", "0"]) == 2


def test_compare_refuses_a_fixed_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    """compare refuses --backend with a usage error (exit 2): it always runs every configuration."""
    assert main(["compare", STATELESS, "--ns", STATELESS_APP, "--backend", "sfn"]) == 2
    assert "compare runs every configuration" in capsys.readouterr().err


def test_compare_reports_a_failing_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the NS script raises in one configuration, compare reports that configuration's error
    with the exception and exits 1."""
    script = _script(
        tmp_path,
        "def main(ns, system):\n"
        "    if system.backend_name == 'sfn':\n"
        "        raise RuntimeError('no SFN today')\n",
    )
    assert main(["compare", STATELESS, "--ns", script]) == 1
    assert "SFN L1 error: RuntimeError: no SFN today" in capsys.readouterr().out


# ---------------------------------------------------------------- footprint
def test_footprint_sfn_sizes_as_tfm() -> None:
    """SFN: half of max(sum of stack_size, 2048), rounded up to 8; one thread."""
    small = footprint(load_system_manifest([STATELESS], backend="sfn", isolation=1))
    assert small.total_stack_size == 2048 and small.shared_stack == 1024
    # Stateless services only: each call's connection lives on the caller's stack.
    assert small.threads == 1 and small.connection_pool == 0 and small.stacks == 1024


def test_footprint_sfn_rounding(tmp_path: Path) -> None:
    """The SFN footprint is unknown while a stack_size macro is undefined; once it is given, the
    shared stack is half the total rounded up to 8, and a connection-based service gets a pool of
    max_connections."""
    manifest = tmp_path / "p.yaml"
    manifest.write_text(
        "psa_framework_version: 1.1\nname: TFM_SP_P\ntype: PSA-ROT\npriority: NORMAL\n"
        "model: SFN\nstack_size: P_STACK\nservices:\n  - name: P\n    sid: 0xB00\n"
        "    non_secure_clients: true\n    connection_based: true\n    version: 1\n",
        encoding="utf-8",
    )
    system = load_system_manifest([str(manifest)], backend="sfn", isolation=1)
    unknown = footprint(system)
    assert unknown.unknown == ["P_STACK"] and unknown.stacks is None
    fp = footprint(system, {"P_STACK": "0x1012"}, max_connections=3)
    assert fp.total_stack_size == 0x1012
    assert fp.shared_stack == 0x810  # 0x1012 / 2 = 0x809, rounded up to 8
    assert fp.connection_pool == 3  # a connection-based service: the pool is needed


def test_footprint_ipc() -> None:
    """The IPC footprint is each partition's own stack, the NS agent's 1024 bytes (1256 with FIH, at
    isolation level 1 only) and idle's 256, with six threads and a pool of 8 connections."""
    system = load_system_manifest([DEMO_LIST], backend="ipc", isolation=1)
    fp = footprint(system, {"CRYPTO_STACK_SIZE": "6144"})
    assert fp.partition_stacks == {
        "TFM_SP_DEMO_ITS": 0x680,
        "TFM_SP_DEMO_CRYPTO": 6144,
        "TFM_SP_DEMO_ATTEST": 0xA00,
        "TFM_SP_DEMO_TIMER": 0x400,
    }
    assert fp.ns_agent_stack == 1024 and fp.idle_stack == 256
    assert fp.threads == 6 and fp.connection_pool == 8
    assert fp.stacks == 0x680 + 6144 + 0xA00 + 0x400 + 1024 + 256
    fih = footprint(system, {"CRYPTO_STACK_SIZE": "6144", "TFM_FIH_PROFILE": "LOW"})
    assert fih.ns_agent_stack == 1256
    level2 = load_system_manifest([DEMO_LIST], backend="ipc", isolation=2)
    assert footprint(level2, {"TFM_FIH_PROFILE": "HIGH"}).ns_agent_stack == 1024


def test_load_accepts_max_connections() -> None:
    """psaspm.load passes max_connections through to the system it builds."""
    assert load(STATELESS, max_connections=3).max_connections == 3


def test_readme_comparison_is_what_compare_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's demo table: every row but wall time is exactly what compare prints."""
    args = ["compare", DEMO_LIST, "--ns", DEMO_APP, "-D", "CRYPTO_STACK_SIZE=0x1800"]
    assert main(args) == 0
    out = capsys.readouterr().out
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in out.splitlines() if line.startswith("│") and "wall time" not in line]
    assert len(rows) >= 14
    for line in rows:
        assert line.split("│")[1].strip() == "NS calls" or line in readme, line
    assert "SFN L1 skipped:" in readme


def test_progress_display_does_not_disturb_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a progress display forced on, run and compare print the same results."""
    from psaspm import cli

    monkeypatch.setattr(cli, "_progress_wanted", lambda args: True)
    monkeypatch.setattr(cli._Progress, "DELAY", 0.0)
    assert main(["run", STATELESS, "--ns", STATELESS_APP, "--backend", "sfn"]) == 0
    assert "CRC-32" in capsys.readouterr().out
    assert main(["compare", STATELESS, "--ns", STATELESS_APP, "--repeat", "30"]) == 0
    assert "SFN interface" in capsys.readouterr().out


LOOPING_MANIFEST = """
{"psa_framework_version": 1.1, "name": "TFM_SP_LOOP", "type": "APPLICATION-ROT",
 "priority": "NORMAL", "model": "SFN", "stack_size": "0x400",
 "services": [{"name": "LOOP", "sid": "0x0000F100", "non_secure_clients": true,
               "connection_based": false, "stateless_handle": 1, "version": 1}]}
"""


def test_run_watchdog_stops_a_looping_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """psaspm run --watchdog turns a service that loops forever into a panic naming the
    partition and its line (exit 1) instead of hanging."""
    manifest = tmp_path / "loop.json"
    manifest.write_text(LOOPING_MANIFEST, encoding="utf-8")
    (tmp_path / "loop.py").write_text("def loop_sfn(msg):\n    while True:\n        pass\n")
    app = _script(tmp_path, "def main(ns, system):\n    ns.call(system.constants['LOOP_HANDLE'])\n")
    for backend in ("sfn", "ipc"):
        status = main(
            ["run", str(manifest), "--ns", app, "--backend", backend, "--watchdog", "0.3", "-q"]
        )
        assert status == 1
        err = capsys.readouterr().err
        assert "TFM_SP_LOOP in watchdog: ran for more than 0.3 s" in err
        assert "loop.py:2 in loop_sfn" in err
        assert "stopped here by the watchdog" in err


@pytest.mark.parametrize("backend", ["sfn", "ipc"])
def test_ctrl_c_stops_a_looping_run_with_one_line(tmp_path: Path, backend: str) -> None:
    """SIGINT while a service loops ends psaspm run with one line on stderr and exit 130,
    no traceback."""
    import signal
    import subprocess
    import sys
    import time

    manifest = tmp_path / "loop.json"
    manifest.write_text(LOOPING_MANIFEST, encoding="utf-8")
    (tmp_path / "loop.py").write_text(
        "import sys\n\ndef loop_sfn(msg):\n    print('looping', flush=True)\n"
        "    while True:\n        pass\n"
    )
    app = _script(tmp_path, "def main(ns, system):\n    ns.call(system.constants['LOOP_HANDLE'])\n")
    argv = [sys.executable, "-m", "psaspm", "run", str(manifest), "--ns", app, "-q"]
    child = subprocess.Popen(
        [*argv, "--backend", backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "looping\n"  # the service is in its loop now
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130
    assert err == "psaspm: interrupted\n"
