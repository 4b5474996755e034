"""The OS-thread mode and AddressSanitizer mode of C partitions (docs/c-partitions.md).

``load(..., c_threads=True)`` (``--c-threads``) runs each C partition's code on an
OS thread of its own, one runnable at a time, the kernel still deciding who runs;
``sanitize="address"`` (``--sanitize address``) builds C with ASan and uses it.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import psaspm
from psaspm import crt, remote
from psaspm.cli import main
from psaspm.consts import PSA_SUCCESS
from psaspm.mailbox.server import Server, build_served_system, parse_address
from psaspm.system import System

from .conftest import EXAMPLES, ns_output

PARTITIONS = Path(__file__).resolve().parent / "partitions"
CHECKSUM_PY = EXAMPLES / "stateless" / "checksum.yaml"
CHECKSUM_C = EXAMPLES / "stateless_c" / "checksum.yaml"
APP_MEM = [PARTITIONS / "c_app_mem_client.yaml", PARTITIONS / "c_app_mem.yaml"]
MM = PARTITIONS / "c_mm.yaml"

ALL_CONFIGS = [("sfn", 1), ("ipc", 1), ("ipc", 2), ("ipc", 3)]
IPC_CONFIGS = [("ipc", 1), ("ipc", 2), ("ipc", 3)]
EDOM, ERANGE = 33, 34  # Linux's values


@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
def test_os_thread_echo_answers_like_the_greenlet_echo(
    backend: str, isolation: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/echo/ns_app.py prints the same lines, with the same counters, against the
    C echo on an OS thread as on its greenlet: the kernel schedules alike."""
    echo = EXAMPLES / "echo_c" / "echo_service.yaml"
    greenlet = ns_output("echo", echo, backend, isolation, capsys, c_threads=False)
    threaded = ns_output("echo", echo, backend, isolation, capsys, c_threads=True)
    assert threaded == greenlet
    assert "hello, secure world" in threaded[0]


@pytest.mark.parametrize(("backend", "isolation"), ALL_CONFIGS)
def test_os_thread_stateless_answers_like_the_greenlet_one(
    backend: str, isolation: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/stateless/ns_app.py prints the same lines and counters against the C
    checksum partition (SFN service functions too) on an OS thread as on its greenlet."""
    greenlet = ns_output("stateless", CHECKSUM_C, backend, isolation, capsys, c_threads=False)
    threaded = ns_output("stateless", CHECKSUM_C, backend, isolation, capsys, c_threads=True)
    assert threaded == greenlet


def _app_mem(backend: str, isolation: int, type: int, size: int) -> tuple[int, bytes]:
    system = psaspm.load(APP_MEM, backend=backend, isolation=isolation, c_threads=True)
    system.boot()
    out = bytearray(size)
    handle = system.constants["C_APP_MEM_CLIENT_HANDLE"]
    return system.ns_client().call(handle, type, [], [out]), bytes(out)


@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
def test_service_writes_through_a_pointer_into_its_blocked_clients_stack(
    backend: str, isolation: int
) -> None:
    """tf-m-tests' PSA_ACCESS_APP_MEM pattern: a client hands a service the address of a
    stack buffer as a uint32_t, and the service writes through it while the client is
    blocked in psa_call: the client's stack stays in place, below 4 GiB."""
    status, out = _app_mem(backend, isolation, 0, 36)
    assert status == PSA_SUCCESS
    assert int.from_bytes(out[:4], "little", signed=True) == PSA_SUCCESS
    assert out[4:] == b"written by the service\0" + b"." * 9


@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
def test_errno_is_per_partition(backend: str, isolation: int) -> None:
    """A C partition's errno is its own: a service setting errno while its client is
    blocked in psa_call leaves the client's errno as the client set it."""
    status, out = _app_mem(backend, isolation, 1, 12)
    assert status == PSA_SUCCESS
    values = [int.from_bytes(out[i : i + 4], "little", signed=True) for i in (0, 4, 8)]
    assert values == [PSA_SUCCESS, EDOM, ERANGE]


def _mm(backend: str, isolation: int) -> System:
    system = psaspm.load([MM, CHECKSUM_PY], backend=backend, isolation=isolation, c_threads=True)
    system.boot()
    return system


def _threads() -> int:
    """The process's thread count, once the garbage of earlier tests is collected."""
    gc.collect()
    return len(os.listdir("/proc/self/task"))


def test_reset_ends_the_previous_boots_os_threads() -> None:
    """reset() ends the OS threads of the boot it ends (their code was unwound): the
    process's thread count is the same after every boot."""
    system = _mm("ipc", 1)
    assert system.ns_client().call(system.constants["C_MM_HANDLE"], 3, [], [bytearray(8)]) == 0
    after_first = _threads()
    for _ in range(3):
        system.reset()
        handle = system.constants["C_MM_HANDLE"]
        assert system.ns_client().call(handle, 3, [], [bytearray(8)]) == PSA_SUCCESS
        assert _threads() == after_first


def test_a_collected_system_ends_its_os_threads() -> None:
    """A system the garbage collector frees (here an SFN one: no partition thread is
    left blocked) ends its C partitions' OS threads."""
    before = _threads()
    system = psaspm.load(CHECKSUM_C, backend="sfn", c_threads=True)
    system.boot()
    handle = system.constants["EXAMPLE_CHECKSUM_HANDLE"]
    assert system.ns_client().call(handle, 0, [b"abc"], [bytearray(4)]) == PSA_SUCCESS
    assert _threads() == before + 1
    del system
    assert _threads() == before


def test_cli_c_threads(capsys: pytest.CaptureFixture[str]) -> None:
    """psaspm run --c-threads runs C partitions on OS threads with the same output."""
    args = [str(EXAMPLES / "echo_c" / "echo_service.yaml"), "--ns"]
    args.append(str(EXAMPLES / "echo" / "ns_app.py"))
    assert main(["run", *args, "-q"]) == 0
    greenlet = capsys.readouterr().out
    assert main(["run", *args, "-q", "--c-threads"]) == 0
    assert capsys.readouterr().out == greenlet
    assert main(["check", *args[:1], "--c-threads"]) == 0


def test_served_c_echo_on_os_threads(tmp_path: Path) -> None:
    """psaspm serve's system takes c_threads too: a remote client's echo call reaches the C
    echo on its OS thread, from the server's SPE thread."""
    served = build_served_system(EXAMPLES / "echo_c" / "echo_service.yaml", c_threads=True)
    server = Server(served, parse_address(f"unix:{tmp_path}/s.sock"), False, 2.0)
    server.start()
    try:
        with remote.connect(str(server.address)) as client:
            handle = client.connect(served.system.constants["EXAMPLE_ECHO_SID"], 1)
            out = bytearray(5)
            assert client.call(handle, 0, [b"hello"], [out]) == PSA_SUCCESS
            assert out == b"hello"
    finally:
        server.stop()


def test_c_threads_must_be_a_bool() -> None:
    """c_threads= that is not a bool is a ConfigError naming the option."""
    options: dict[str, Any] = {"c_threads": "yes"}
    with pytest.raises(psaspm.ConfigError, match="c_threads"):
        psaspm.load(CHECKSUM_C, **options)


ASAN = crt.asan_runtime()
HEAP_BUG = PARTITIONS / "c_heap_bug.yaml"


@pytest.mark.skipif(ASAN is None, reason="the C compiler has no AddressSanitizer runtime")
def test_sanitize_address_reports_a_c_heap_overflow(tmp_path: Path) -> None:
    """psaspm run --sanitize address builds C partition code with AddressSanitizer (the
    command re-executes itself with ASan's runtime preloaded): a heap overflow in a
    partition is ASan's report, naming the partition's source line."""
    script = tmp_path / "ns_app.py"
    script.write_text(
        "def main(ns, system):\n"
        '    ns.call(system.constants["C_HEAP_BUG_HANDLE"], 0, [bytes(16)], [])\n'
    )
    source = HEAP_BUG.with_suffix(".c")
    line = next(
        n for n, text in enumerate(source.read_text().splitlines(), 1) if "OVERFLOW" in text
    )
    argv = [sys.executable, "-m", "psaspm", "run", str(HEAP_BUG), "--ns", str(script)]
    done = subprocess.run(
        [*argv, "--sanitize", "address"], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in done.stderr
    assert f"c_heap_bug.c:{line}" in done.stderr


@pytest.mark.skipif(ASAN is None, reason="the C compiler has no AddressSanitizer runtime")
def test_sanitize_address_runs_ipc_c_partitions_clean() -> None:
    """Under --sanitize address, IPC C partitions blocking in psa_wait and psa_call on
    their OS threads (the C echo, isolation level 2) run to the end with no ASan report."""
    argv = [sys.executable, "-m", "psaspm", "run", str(EXAMPLES / "echo_c" / "echo_service.yaml")]
    argv += ["--ns", str(EXAMPLES / "echo" / "ns_app.py"), "--isolation", "2", "-q"]
    done = subprocess.run(
        [*argv, "--sanitize", "address"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "AddressSanitizer" not in done.stderr
    assert "hello, secure world" in done.stdout


def test_cli_sanitize_in_process_refuses_saying_how(capsys: pytest.CaptureFixture[str]) -> None:
    """psaspm.cli.main(argv) with --sanitize address in a process without ASan's runtime
    (it cannot re-execute a caller's process) exits 2 with one line naming LD_PRELOAD."""
    args = ["run", str(HEAP_BUG), "--sanitize", "address"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "AddressSanitizer's runtime" in err and ("LD_PRELOAD" in err or "libasan" in err)


def test_sanitize_address_needs_the_asan_runtime_first() -> None:
    """load(sanitize="address") in a process without ASan's runtime is a ConfigError
    saying how to load it (it must come before Python's own libraries)."""
    assert not crt.asan_loaded()
    with pytest.raises(psaspm.ConfigError, match="AddressSanitizer's runtime"):
        psaspm.load(HEAP_BUG, sanitize="address")


def test_sanitize_takes_address_only() -> None:
    """sanitize= other than "address" is a ConfigError naming the option."""
    with pytest.raises(psaspm.ConfigError, match="sanitize"):
        psaspm.load(HEAP_BUG, sanitize="thread")
