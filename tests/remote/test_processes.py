"""psaspm serve with real client processes: many at once, one killed mid-call,
and the ``psaspm serve`` command's life cycle (signals, socket file)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import psaspm
from psaspm import remote
from psaspm.psa import PSA_SUCCESS

from .conftest import ECHO_SID, LOOP, RAISE, RELEASE, SERVICES, STUBBORN, ServeFn
from .test_serve import STATELESS, call_in_thread, probe, wait_for

WORKER = Path(__file__).with_name("worker.py")
REPO = Path(__file__).resolve().parents[2]


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.stress
@pytest.mark.timeout(120)
def test_32_processes_x_1000_calls(serve: ServeFn) -> None:
    """32 client processes of 1000 calls each are all answered correctly under distinct client IDs,
    every call reaching the service exactly once, with nothing discarded or left in use."""
    server = serve(slots=16, max_connections=96)
    clients, calls = 32, 1000
    started = time.monotonic()
    workers = [spawn(str(server.address), "echo", str(calls)) for _ in range(clients)]
    summaries = []
    for worker in workers:
        out, err = worker.communicate(timeout=100)
        assert worker.returncode == 0, err[-2000:]
        summaries.append(json.loads(out))
    elapsed = time.monotonic() - started
    assert all(s["bad"] == 0 and s["calls"] == calls for s in summaries)
    assert len({s["client_id"] for s in summaries}) == clients
    with remote.connect(str(server.address)) as watcher:
        seen = probe(watcher)
        stats = watcher.stats()
    # Every call reached the service exactly once and was answered exactly once.
    assert seen["calls"] == clients * calls
    assert len(seen["connects"]) == len(seen["disconnects"]) == 2 * clients
    # Each worker: 2 connects + N calls + 2 closes; plus the watcher's probe.
    assert stats["requests"] == stats["replies"] == clients * (calls + 4) + 1
    assert stats["discarded"] == 0 and stats["protocol_errors"] == 0
    assert stats["slots_in_use"] == 0 and stats["spm"]["connections_in_use"] == 0
    print(f"\n{clients} x {calls} calls in {elapsed:.1f} s")


@pytest.mark.timeout(60)
def test_client_killed_mid_call(serve: ServeFn) -> None:
    """A client process killed inside a call has its connection closed only after that call ends
    and its reply is discarded, while other clients keep working."""
    server = serve(slots=8)
    address = str(server.address)
    watcher = remote.connect(address)
    bystander = remote.connect(address)
    kept = bystander.connect(ECHO_SID, 1)
    victim = spawn(address, "hold")
    assert victim.stdout is not None
    info = json.loads(victim.stdout.readline())
    wait_for(lambda: probe(watcher)["held"] == 1)  # its call is inside the service
    assert watcher.stats()["slots_in_use"] == 1
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    wait_for(lambda: watcher.stats()["clients"] == 2)
    # The call it was in still holds a slot: its connection cannot close before it ends.
    out = bytearray(4)
    assert bystander.call(kept, 0, [b"live"], [out]) == PSA_SUCCESS and out == b"live"
    assert probe(watcher)["disconnects"] == []
    assert watcher.call(STATELESS, RELEASE) == 1  # the held call completes: reply discarded
    wait_for(lambda: probe(watcher)["disconnects"] == [info["client_id"]])
    wait_for(lambda: watcher.stats()["sessions"] == 2)
    stats = watcher.stats()
    assert stats["discarded"] == 1
    assert stats["slots_in_use"] == 0 and stats["queued"] == 0
    assert stats["open_handles"] == 1  # the bystander's
    assert stats["spm"]["connections_in_use"] == 1
    assert bystander.call(kept, 0, [b"more"], [out]) == PSA_SUCCESS and out == b"more"
    bystander.close(kept)
    bystander.disconnect()
    wait_for(lambda: watcher.stats()["spm"]["connections_in_use"] == 0)
    watcher.disconnect()


def serve_command(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "psaspm", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_command_runs_and_stops_gracefully(sockdir: Path, stop: signal.Signals) -> None:
    """psaspm serve listens on an owner-only (0600) socket and on SIGTERM or SIGINT exits 0, removes
    the socket file and cuts its clients off."""
    path = sockdir / "cli.sock"
    server = serve_command(str(SERVICES), "--isolation", "2", "--listen", f"unix:{path}")
    assert server.stdout is not None
    try:
        line = server.stdout.readline()
        assert "serving TFM_NS_MAILBOX_AGENT" in line, server.stderr.read() if server.stderr else ""
        assert (path.stat().st_mode & 0o777) == 0o600
        client = remote.connect(f"unix:{path}")
        handle = client.connect(ECHO_SID, 1)
        out = bytearray(2)
        assert client.call(handle, 0, [b"hi"], [out]) == PSA_SUCCESS and out == b"hi"
        server.send_signal(stop)
        assert server.wait(20) == 0
        assert not path.exists()
        with pytest.raises(remote.RemoteError):
            client.call(handle, 0)
        client.disconnect()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.timeout(60)
def test_serve_command_over_tcp_loopback() -> None:
    """psaspm serve --listen tcp:127.0.0.1:0 prints the address with the port it bound, serves calls
    there and exits 0 on SIGTERM."""
    server = serve_command(str(SERVICES), "--listen", "tcp:127.0.0.1:0")
    assert server.stdout is not None
    try:
        line = server.stdout.readline()
        address = line.rsplit(" on ", 1)[1].strip()
        assert address.startswith("tcp:127.0.0.1:")
        with remote.connect(address) as client:
            out = bytearray(3)
            assert client.call(STATELESS, 0, [b"tcp"], [out]) == PSA_SUCCESS and out == b"tcp"
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "sfn", "--listen", "unix:/tmp/x.sock"], "needs the IPC backend"),
        (["--listen", "tcp:10.1.2.3:5000"], "--allow-remote"),
        (["--listen", "tcp:nonsense"], "expected tcp:HOST:PORT"),
        (["--listen", "tcp:127.0.0.1:99999"], "port 99999 is out of range (0..65535)"),
    ],
)
def test_serve_command_errors(args: list[str], message: str) -> None:
    """psaspm serve rejects the SFN backend, a non-loopback TCP address without --allow-remote, a
    malformed address and an out-of-range port with exit 2 and a message, not a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "psaspm", "serve", str(SERVICES), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("signals", "shutdown_timeout"),
    [([signal.SIGTERM], "1"), ([signal.SIGINT, signal.SIGINT], "60")],
    ids=["SIGTERM", "SIGINT-twice"],
)
def test_serve_command_stops_while_a_service_loops(
    sockdir: Path, signals: list[signal.Signals], shutdown_timeout: str
) -> None:
    """psaspm serve stops while a service loops forever: a signal refuses new clients at once, the
    partition code is interrupted at the shutdown deadline (or at once on a second SIGINT), the
    caller gets an error, and the server names the partition and line on stderr and exits 0."""
    path = sockdir / "loop.sock"
    server = serve_command(
        str(SERVICES), "--listen", f"unix:{path}", "--shutdown-timeout", shutdown_timeout
    )
    assert server.stdout is not None and server.stderr is not None
    try:
        assert "serving" in server.stdout.readline()
        client = remote.connect(f"unix:{path}")
        caller, errors = call_in_thread(client, LOOP)
        assert server.stdout.readline().strip() == "looping"  # the SPE is inside the loop
        server.send_signal(signals[0])
        wait_for(lambda: not path.exists())
        with pytest.raises(OSError):  # refused at once, not left hanging
            remote.connect(f"unix:{path}", timeout=5)
        for again in signals[1:]:
            server.send_signal(again)
        assert server.wait(30) == 0
        caller.join(10)
        assert len(errors) == 1
        stderr = server.stderr.read()
        assert "interrupted partition code of TFM_SP_REMOTE_ECHO" in stderr
        assert "remote_echo.py" in stderr
        assert "Traceback" not in stderr
        client.disconnect()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.timeout(60)
def test_serve_command_logs_panics_with_tracebacks_and_restarts(sockdir: Path) -> None:
    """psaspm serve --restart-on-panic logs each panic on stderr, with the partition's own
    traceback (its file and line, no psaspm frames) when partition code raised, and each restart,
    and serves again after it."""
    path = sockdir / "panic.sock"
    server = serve_command(str(SERVICES), "--listen", f"unix:{path}", "--restart-on-panic")
    assert server.stdout is not None and server.stderr is not None
    try:
        assert "serving" in server.stdout.readline()
        with remote.connect(f"unix:{path}") as client:
            for _ in range(2):
                with pytest.raises(psaspm.Panic) as info:
                    client.call(STATELESS, RAISE, [b"x"])
                assert "ZeroDivisionError" in info.value.record.reason
            out = bytearray(2)
            assert client.call(STATELESS, 0, [b"ok"], [out]) == PSA_SUCCESS and out == b"ok"
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        stderr = server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert stderr.count("psaspm: panic: TFM_SP_REMOTE_ECHO in ") == 2
    assert "ZeroDivisionError" in stderr
    frames = [line for line in stderr.splitlines() if line.startswith('  File "')]
    assert frames and all("remote_echo.py" in line for line in frames)
    assert any("in echo" in line for line in frames)
    assert "restarted the SPE after the panic (restart 1)" in stderr
    assert "restarted the SPE after the panic (restart 2)" in stderr


@pytest.mark.timeout(60)
def test_serve_command_watchdog_halts_a_looping_service_and_restarts(sockdir: Path) -> None:
    """psaspm serve --watchdog halts a service that loops: its caller gets a Panic with api
    "watchdog", the panic and the restart are logged, and the server serves calls again."""
    path = sockdir / "watchdog.sock"
    server = serve_command(
        str(SERVICES), "--listen", f"unix:{path}", "--watchdog", "0.5", "--restart-on-panic"
    )
    assert server.stdout is not None and server.stderr is not None
    try:
        assert "serving" in server.stdout.readline()
        with remote.connect(f"unix:{path}") as client:
            with pytest.raises(psaspm.Panic) as info:
                client.call(STATELESS, LOOP)
            assert info.value.record.api == "watchdog"
            assert info.value.record.partition == "TFM_SP_REMOTE_ECHO"
            out = bytearray(2)
            assert client.call(STATELESS, 0, [b"ok"], [out]) == PSA_SUCCESS and out == b"ok"
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        stderr = server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "psaspm: panic: TFM_SP_REMOTE_ECHO in watchdog" in stderr
    assert "restarted the SPE after the panic (restart 1)" in stderr


@pytest.mark.timeout(60)
def test_serve_command_ends_when_partition_code_cannot_be_interrupted(sockdir: Path) -> None:
    """Partition code that swallows even psaspm's interruption does not keep psaspm serve alive:
    shortly after the shutdown deadline the process exits with status 1, naming the partition,
    and the socket file is gone."""
    path = sockdir / "stubborn.sock"
    server = serve_command(str(SERVICES), "--listen", f"unix:{path}", "--shutdown-timeout", "0.5")
    assert server.stdout is not None and server.stderr is not None
    try:
        assert "serving" in server.stdout.readline()
        client = remote.connect(f"unix:{path}")
        caller, errors = call_in_thread(client, STUBBORN, daemon=True)
        assert server.stdout.readline().strip() == "looping"
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 1
        stderr = server.stderr.read()
        assert "partition code of TFM_SP_REMOTE_ECHO did not stop" in stderr
        assert "cannot be interrupted; exiting" in stderr
        assert not path.exists()
        caller.join(10)
        assert len(errors) == 1  # the caller learns the server went away
        client.disconnect()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.timeout(60)
def test_serve_command_stops_when_its_stderr_is_gone(sockdir: Path) -> None:
    """A psaspm serve whose stderr reader went away still stops on SIGTERM while a service loops:
    a log line that cannot be written never loses the stop."""
    path = sockdir / "nostderr.sock"
    server = serve_command(str(SERVICES), "--listen", f"unix:{path}", "--shutdown-timeout", "0.5")
    assert server.stdout is not None and server.stderr is not None
    try:
        assert "serving" in server.stdout.readline()
        server.stderr.close()  # writes to it now fail (EPIPE)
        client = remote.connect(f"unix:{path}")
        caller, errors = call_in_thread(client, LOOP, daemon=True)
        assert server.stdout.readline().strip() == "looping"
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        assert not path.exists()
        caller.join(10)
        assert not caller.is_alive() and len(errors) == 1  # the caller learns of the stop
        client.disconnect()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
