"""The C client library (``psaspm libs --client``): C programs in other processes calling
``psaspm serve`` through ``psa/client.h``, with psaspm.remote's behaviour."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from psaspm import remote
from psaspm.cbuild import INCLUDE_DIR
from psaspm.consts import (
    PSA_ERROR_BUFFER_TOO_SMALL,
    PSA_ERROR_COMMUNICATION_FAILURE,
    PSA_ERROR_CONNECTION_REFUSED,
    PSA_ERROR_PROGRAMMER_ERROR,
    PSA_SUCCESS,
)
from psaspm.mailbox import protocol as proto

from .conftest import (
    REMOTE_SERVICES,
    REPO,
    ServeFn,
    SpawnFn,
    build_app,
    psaspm_env,
    run_app,
)

ECHO_SID = 0xF000
COMM = str(PSA_ERROR_COMMUNICATION_FAILURE)
PROG = str(PSA_ERROR_PROGRAMMER_ERROR)


REMOTE_STATELESS = 0x40000100  # REMOTE_ECHO_STATELESS's static handle (tests/remote)
REMOTE_PROBE = 0x40000101
RELEASE = 3  # answers every held call


def probe(client: remote.RemoteClient) -> dict[str, Any]:
    """What the tests/remote service partition has seen (its REMOTE_PROBE service)."""
    out = bytearray(4096)
    assert client.call(REMOTE_PROBE, 0, (), [out]) == PSA_SUCCESS
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def remote_basic(address: str) -> dict[str, str]:
    """The basic sequence of client_app, done with psaspm.remote."""
    with remote.connect(address) as ns:
        values = {
            "framework_version": str(ns.framework_version()),
            "version": str(ns.version(ECHO_SID)),
            "version_unknown": str(ns.version(0xABCD)),
            "connect_wrong_version": str(ns.connect(ECHO_SID, 2)),
        }
        handle = ns.connect(ECHO_SID, 1)
        values["handle_valid"] = str(int(handle > 0))
        out = bytearray(b"." * 32)
        values["call"] = str(ns.call(handle, 0, [b"hello,", b"world"], [out]))
        values["out_len"] = str(len(out))
        values["out"] = out.decode()
        values["call_too_small"] = str(ns.call(handle, 0, [b"hello,", b"world"], [bytearray(4)]))
        count = bytearray(4)
        values["count"] = str(ns.call(handle, 1, [], [count]))
        values["count_value"] = str(int.from_bytes(count, "little"))
        ns.close(handle)
        values["after_close"] = str(ns.call(handle, 0, [b"hello,"], [bytearray(32)]))
    return values


def test_basic_calls_match_psaspm_remote(app: Path, serve: ServeFn) -> None:
    """Over a Unix socket, a C client's framework version, versions, connect, calls (out-vector
    lengths updated to the bytes written; vectors on the stack or the heap, up to 200,000 bytes)
    and close give what psaspm.remote gets for the same calls, with nothing on stderr."""
    server = serve()
    ran = run_app(app, server.address, "basic")
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""
    expected = remote_basic(server.address)
    assert {k: ran.values[k] for k in expected} == expected
    assert ran.values["framework_version"] == str(0x0101)
    assert ran.values["version"] == "1" and ran.values["version_unknown"] == "0"
    assert ran.values["connect_wrong_version"] == str(PSA_ERROR_CONNECTION_REFUSED)
    assert ran.values["call"] == str(PSA_SUCCESS)
    assert ran.values["out_len"] == "11" and ran.values["out"] == "hello,world"
    assert ran.values["out_rest"] == "."  # bytes past what the service wrote stay as they were
    assert ran.values["call_too_small"] == str(PSA_ERROR_BUFFER_TOO_SMALL)
    assert ran.values["count_value"] == "1"
    assert ran.values["after_close"] == PROG
    assert ran.values["heap_call"] == "0" and ran.values["heap_out"] == "heap"
    assert ran.values["big_call"] == "0" and ran.values["big_ok"] == "1"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_tcp_address(app: Path, serve: ServeFn, host: str) -> None:
    """PSASPM_SERVER=tcp:HOST:PORT (IPv4, or IPv6 with or without brackets) reaches a server
    listening on TCP loopback."""
    if host == "[::1]" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    server = serve(listen=f"tcp:{host}:0")
    port = server.address.rsplit(":", 1)[1]
    address = f"tcp:{host}:{port}"
    for other in sorted({address, server.address}):  # the server prints ::1 unbracketed
        ran = run_app(app, other, "basic")
        assert ran.returncode == 0, ran.stderr
        assert ran.values["call"] == "0" and ran.values["out"] == "hello,world"
        assert ran.values["after_close"] == PROG


def test_misuse_is_a_programmer_error_and_the_client_keeps_working(
    app: Path, serve: ServeFn
) -> None:
    """A bad or null handle, more than PSA_MAX_IOVEC vectors, an unreadable in-vector (also
    from a call made on a coroutine's stack), an unwritable out-vector, null vector arrays, a
    vector over the protocol's limits and a negative type each return
    PSA_ERROR_PROGRAMMER_ERROR (-129) without crashing, and the next call works."""
    server = serve()
    ran = run_app(app, server.address, "misuse")
    assert ran.returncode == 0, ran.stderr
    for key in (
        "bad_handle",
        "null_handle",
        "too_many",
        "unreadable",
        "unwritable",
        "null_vectors",
        "over_limit",
        "negative_type",
        "other_stack_unmapped",
    ):
        assert ran.values[key] == PROG, key
    assert ran.values["still_works"] == "0" and ran.values["out"] == "abc"
    assert "MAX_VECTOR" in ran.stderr  # the one refusal psaspm.remote reports (as ValueError)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_server_gone(app: Path, serve: ServeFn, spawn: SpawnFn, stop: signal.Signals) -> None:
    """When the server goes away (stopped, or killed), the client's next calls return
    PSA_ERROR_COMMUNICATION_FAILURE with a "psaspm client:" line on stderr for each, and the
    program carries on to its own exit (no SIGPIPE, no abort)."""
    server = serve()
    client = spawn(app, server.address, "gone")
    assert client.stdout is not None and client.stdin is not None
    assert client.stdout.readline().strip() == "ready=1"
    server.process.send_signal(stop)
    server.process.wait(20)
    out, err = client.communicate("go\n", timeout=30)
    assert client.returncode == 0, err  # negative would be death by a signal
    values = dict(line.split("=", 1) for line in out.split())
    assert values == {"first": COMM, "second": COMM, "connect": COMM, "end": "1"}
    lines = err.splitlines()
    assert lines[0].startswith(f"psaspm client: psa_call: lost the server at {server.address}: ")
    if stop is signal.SIGTERM:
        assert "SHUTDOWN" in lines[0]  # the server's fatal error, read after the failed send
    else:
        assert "TRUNCATED: the server closed the connection" in lines[0]
    assert lines[1].startswith("psaspm client: psa_call: not connected: ")
    assert lines[2].startswith("psaspm client: psa_connect: not connected: ")
    assert len(lines) == 4  # and psa_close's


@pytest.mark.parametrize(
    ("address", "message"),
    [
        (None, "PSASPM_SERVER is not set"),
        ("", "PSASPM_SERVER is not set"),
        ("tcp:nonsense", "PSASPM_SERVER 'tcp:nonsense': expected tcp:HOST:PORT"),
        ("tcp:127.0.0.1:99999", "port 99999 is out of range (0..65535)"),
        ("tcp:127.0.0.1:http", "port 'http' is not a number (0..65535)"),
        ("tcp:[]:7000", "expected tcp:HOST:PORT"),
        ("unix:", "expected unix:PATH or tcp:HOST:PORT"),
        ("unix:/nonexistent-psaspm/x.sock", "cannot connect to the server at unix:/nonexistent"),
        ("unix:/" + "x" * 200, "longer than 107 bytes"),
    ],
)
def test_bad_address(app: Path, address: str | None, message: str) -> None:
    """A missing or malformed PSASPM_SERVER, or one where no server listens, makes every call
    fail (PSA_ERROR_COMMUNICATION_FAILURE, PSA_VERSION_NONE, 0) with a line naming the problem."""
    ran = run_app(app, address, "basic")
    assert ran.returncode == 0, ran.stderr
    assert ran.values["framework_version"] == "0" and ran.values["version"] == "0"
    assert ran.values["connect_wrong_version"] == COMM and ran.values["call"] == COMM
    lines = ran.stderr.splitlines()
    assert lines and all(line.startswith("psaspm client: ") for line in lines)
    assert message in lines[0], lines[0]


def test_connection_refused_over_tcp(app: Path) -> None:
    """A TCP address where nothing listens is reported as a refused connection."""
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ran = run_app(app, f"tcp:127.0.0.1:{port}", "basic")
    assert ran.returncode == 0
    assert "Connection refused" in ran.stderr.splitlines()[0]


@pytest.fixture
def fake_server(sockdir: Path) -> Iterator[Callable[[bytes], str]]:
    """``fake_server(reply)``: a Unix socket server that welcomes each client, then answers its
    first request with the raw bytes ``reply`` and hangs up."""
    listeners: list[socket.socket] = []

    def start(reply: bytes) -> str:
        path = str(sockdir / f"fake{len(listeners)}.sock")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen()
        listeners.append(listener)

        def run() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(64)  # HELLO
                    conn.sendall(proto.encode_welcome(proto.Welcome(-1, 4, 4, 1, 1, 1), seq=1))
                    conn.recv(64)  # the first request
                    conn.sendall(reply)
                    time.sleep(0.2)

        threading.Thread(target=run, daemon=True).start()
        return f"unix:{path}"

    yield start
    for listener in listeners:
        listener.close()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"\xff\xff\xff\xff", "OVERSIZED"),
        (proto.frame(0x82, 2, b"\x00\x00\x00\x00\x02\x00\x00\x00"), "MALFORMED"),
        (proto.frame(0x42, 2), "UNKNOWN_KIND"),
        (proto.frame(0x82, 2, b"")[:6], "TRUNCATED"),
    ],
)
def test_protocol_error_from_the_server(
    app: Path, fake_server: Callable[[bytes], str], reply: bytes, message: str
) -> None:
    """A server that sends a bad length, a malformed RESULT, an unknown frame kind or a cut frame
    makes the call fail with PSA_ERROR_COMMUNICATION_FAILURE and a line naming the error; the
    connection is then lost for good, as in psaspm.remote."""
    address = fake_server(reply)
    ran = run_app(app, address, "misuse")
    assert ran.returncode == 0, ran.stderr
    assert ran.values["bad_handle"] == COMM  # psa_connect was the request answered with garbage
    lines = ran.stderr.splitlines()
    assert lines[0].startswith("psaspm client: psa_connect: ") and message in lines[0], lines
    assert "not connected" in lines[1]


def test_several_c_clients_at_once(app: Path, serve: ServeFn, spawn: SpawnFn) -> None:
    """Eight C client processes calling at once each get their own echoes back, and the server
    is left with every request answered and no connection in use."""
    server = serve()
    clients, calls = 8, 200
    procs = [spawn(app, server.address, "many", str(calls)) for _ in range(clients)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok=1", err
    with remote.connect(server.address) as watcher:
        wait_for(lambda: watcher.stats()["spm"]["connections_in_use"] == 0)
        stats = watcher.stats()
    assert stats["requests"] == stats["replies"] == clients * (calls + 2)
    assert stats["protocol_errors"] == 0 and stats["discarded"] == 0


def test_threads_share_the_process_connection(app: Path, serve: ServeFn) -> None:
    """Four threads of one C client, each with its own secure connection, call at once and all
    get correct echoes (the library serialises them on the process's connection)."""
    server = serve()
    ran = run_app(app, server.address, "threads", "4", "200")
    assert ran.returncode == 0, ran.stderr
    assert ran.values["threads_ok"] == "4"
    with remote.connect(server.address) as watcher:
        stats = watcher.stats()
    assert stats["clients"] == 1  # the watcher: the threads used one connection, now closed


def test_forked_child_is_its_own_client(app: Path, serve: ServeFn) -> None:
    """A child made by fork() gets its own connection (a new NS client): the parent's handle is
    not its own (-129), its own connection works, and the parent's keeps working."""
    server = serve()
    ran = run_app(app, server.address, "fork")
    assert ran.returncode == 0, ran.stderr
    assert ran.values["child_parent_handle"] == PROG
    assert ran.values["child_ok"] == "1" and ran.values["child_exit"] == "0"
    assert ran.values["parent_ok"] == "1"


def test_fork_while_another_thread_is_in_a_call(app: Path, serve: ServeFn, spawn: SpawnFn) -> None:
    """A child forked while another thread of its parent is inside a call (holding the
    library's lock) can call at once on its own connection; the held call completes after."""
    server = serve(sources=(REMOTE_SERVICES,))
    client = spawn(app, server.address, "fork-during-call", "0xF800")
    assert client.stdin is not None and client.stdout is not None
    with remote.connect(server.address) as watcher:
        wait_for(lambda: probe(watcher)["held"] == 1)
        client.stdin.write("fork\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "child_call=0"
        assert client.stdout.readline().strip() == "child_exit=0"
        assert watcher.call(REMOTE_STATELESS, RELEASE) == 1
        out, err = client.communicate(timeout=30)
    assert client.returncode == 0, err
    assert out.strip() == "held_call=0"


def test_secure_panic(app: Path, serve: ServeFn) -> None:
    """A call that panics the SPE, and every call while it stays halted, returns
    PSA_ERROR_COMMUNICATION_FAILURE with a line naming the panicking partition."""
    server = serve(sources=(REMOTE_SERVICES,))
    ran = run_app(app, server.address, "panic", "0xF800")
    assert ran.returncode == 0, ran.stderr
    assert ran.values["handle_valid"] == "1"
    assert ran.values["panic_call"] == COMM and ran.values["after_panic"] == COMM
    first = ran.stderr.splitlines()[0]
    assert first.startswith("psaspm client: psa_call: the secure side halted: PANIC")
    assert "TFM_SP_REMOTE_ECHO" in first


def test_static_object_needs_no_shared_library(
    serve: ServeFn, tmp_path: Path, sockdir: Path
) -> None:
    """A program linked with `psaspm libs --client --static` runs with the build cache gone."""
    cache = tmp_path / "cache"
    app = build_app(cache, tmp_path / "static_app", libs="libs --client --static")
    shutil.rmtree(cache)
    server = serve()
    ran = run_app(app, server.address, "basic")
    assert ran.returncode == 0, ran.stderr
    assert ran.values["call"] == "0" and ran.values["out"] == "hello,world"


def psaspm_cli(*args: str, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "psaspm", *args],
        capture_output=True,
        text=True,
        env=psaspm_env(cache, **env),
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_libs_and_cflags_commands(tmp_path: Path) -> None:
    """`psaspm libs --client` builds the library once into the cache and prints -L, an rpath and
    -lpsaspm_client for a folder holding it; `psaspm cflags --client` prints psaspm's -I."""
    cache = tmp_path / "cache"
    first = psaspm_cli("libs", "--client", cache=cache)
    assert first.returncode == 0, first.stderr
    flags = first.stdout.split()
    folder = Path(flags[0].removeprefix("-L"))
    assert folder.is_relative_to(cache)
    assert flags[1:3] == [f"-Wl,-rpath,{folder}", "-lpsaspm_client"]
    shared = folder / "libpsaspm_client.so"
    built = shared.stat().st_mtime_ns
    again = psaspm_cli("libs", "--client", cache=cache)
    assert again.stdout == first.stdout and shared.stat().st_mtime_ns == built
    static = psaspm_cli("libs", "--client", "--static", cache=cache)
    assert static.stdout.split()[0] == str(folder / "psaspm_client.o")
    cflags = psaspm_cli("cflags", "--client", cache=cache)
    assert cflags.stdout.split() == [f"-I{INCLUDE_DIR}"]


def test_libs_errors(tmp_path: Path) -> None:
    """`psaspm libs` without --client, or with a compiler that fails, exits 2 with a message
    naming the problem and no traceback."""
    cache = tmp_path / "cache"
    missing = psaspm_cli("libs", cache=cache)
    assert missing.returncode == 2 and "--client" in missing.stderr
    broken = psaspm_cli("libs", "--client", cache=cache, CC="false")
    assert broken.returncode == 2
    assert "the psaspm C client library" in broken.stderr
    assert "Traceback" not in broken.stderr
