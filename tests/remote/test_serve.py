"""psaspm serve and psaspm.remote: the NS client API across processes, isolation
between clients, disconnects, panics and protocol errors."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import psaspm
from psaspm import remote
from psaspm.mailbox import protocol as proto
from psaspm.mailbox.server import Server
from psaspm.psa import (
    PSA_ERROR_PROGRAMMER_ERROR,
    PSA_FRAMEWORK_VERSION,
    PSA_SUCCESS,
)

from .conftest import (
    BATCH,
    ECHO,
    ECHO_SID,
    HOLD,
    LOOP,
    PANIC,
    RELEASE,
    SECRET_SID,
    SERVICES,
    SLOW,
    STATELESS_SID,
    ServeFn,
)

STATELESS = 0x40000100  # REMOTE_ECHO_STATELESS's handle (version 1, index 0)
PROBE = 0x40000101


def addr(server: Server) -> str:
    return str(server.address)


def probe(client: remote.RemoteClient) -> dict[str, Any]:
    out = bytearray(4096)
    assert client.call(PROBE, 0, (), [out]) == PSA_SUCCESS
    return json.loads(out)  # type: ignore[no-any-return]


def call_in_thread(
    client: remote.RemoteClient, call_type: int, daemon: bool = False
) -> tuple[threading.Thread, list[BaseException]]:
    """``client.call(STATELESS, call_type)`` started in a thread, and the RemoteErrors it
    raises (a list the thread fills)."""
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.call(STATELESS, call_type)
        except remote.RemoteError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call, daemon=daemon)
    thread.start()
    return thread, errors


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def session(client: remote.RemoteClient) -> list[Any]:
    """The same script as a local NS client would run: every result."""
    results: list[Any] = [client.framework_version(), client.version(ECHO_SID)]
    results.append(client.version(SECRET_SID))
    results.append(client.version(0x12345))
    handle = client.connect(ECHO_SID, 1)
    results.append(handle > 0)
    out = bytearray(16)
    results += [client.call(handle, ECHO, [b"ab", bytearray(b"cd")], [out]), bytes(out)]
    out = bytearray(2)
    results += [client.call(handle, ECHO, [b"toolong"], [out]), bytes(out)]
    out = bytearray(8)
    results += [client.call(STATELESS, ECHO, [b"sl"], [out]), bytes(out)]
    results.append(client.call(handle, -1))
    results.append(client.call(handle, 0, [b""] * 3, [bytearray(1)] * 2))
    results.append(client.call(handle, 0, [], [b"not a bytearray"]))  # type: ignore[list-item]
    results.append(client.call(0x7777, 0))
    results.append(client.connect(SECRET_SID, 1))
    results.append(client.connect(ECHO_SID, 2))
    results.append(client.connect(STATELESS_SID, 1))
    results.append(client.connect(0x12345, 1))
    client.close(handle)
    client.close(handle)  # invalid now: silent
    client.close(0)
    results.append(client.call(handle, 0))
    return results


def test_remote_client_matches_a_local_ns_client(serve: ServeFn) -> None:
    """A remote client gets exactly the results a local NS client gets for the same session,
    including version 0 for a secure-only service and PROGRAMMER_ERROR on a closed handle."""
    server = serve()
    with remote.connect(addr(server)) as client:
        got = session(client)
    local = psaspm.load(SERVICES)
    local.boot()
    assert got == session(local.ns_client())  # type: ignore[arg-type]
    assert got[0] == PSA_FRAMEWORK_VERSION
    assert got[2] == 0 and got[-1] == PSA_ERROR_PROGRAMMER_ERROR


def test_client_ids_come_from_the_agent_range(serve: ServeFn) -> None:
    """Each remote client gets its own client ID from the mailbox agent's range (-0x04000000,
    -0x04000001, ...), and the service sees that ID on its calls."""
    server = serve()
    a, b = remote.connect(addr(server)), remote.connect(addr(server))
    # TF-M's translation: limit + 1 + ns_id, with ns_id -1, -2, ... per connection.
    assert {a.client_id, b.client_id} == {-0x04000000, -0x04000001}
    handle = a.connect(ECHO_SID, 1)
    assert a.call(handle, 0, [b"x"], [bytearray(1)]) == PSA_SUCCESS
    assert probe(b)["callers"][-1] == a.client_id
    a.disconnect()
    b.disconnect()


def test_a_handle_belongs_to_its_client(serve: ServeFn) -> None:
    """Another client's handle is refused (PROGRAMMER_ERROR for a call, silently for a close)
    without reaching the service, and stays usable by its owner."""
    server = serve()
    owner, other = remote.connect(addr(server)), remote.connect(addr(server))
    handle = owner.connect(ECHO_SID, 1)
    calls = probe(owner)["calls"]
    out = bytearray(4)
    assert other.call(handle, 0, [b"steal"], [out]) == PSA_ERROR_PROGRAMMER_ERROR
    assert out == bytearray(4)
    other.close(handle)  # refused silently: the connection stays open
    assert probe(owner)["calls"] == calls  # nothing reached the echo service
    assert probe(owner)["disconnects"] == []
    assert owner.call(handle, 0, [b"mine"], [out]) == PSA_SUCCESS and out == b"mine"
    owner.disconnect()
    other.disconnect()


def test_disconnect_closes_the_clients_connections(serve: ServeFn) -> None:
    """A client that disconnects has each of its open connections closed, the service seeing a
    disconnect with its client ID, and no handle or SPM connection stays in use."""
    server = serve()
    watcher = remote.connect(addr(server))
    client = remote.connect(addr(server))
    handles = [client.connect(ECHO_SID, 1) for _ in range(3)]
    assert all(h > 0 for h in handles)
    assert watcher.stats()["open_handles"] == 3
    client.disconnect()
    wait_for(lambda: len(probe(watcher)["disconnects"]) == 3)
    assert set(probe(watcher)["disconnects"]) == {client.client_id}
    stats = watcher.stats()
    assert stats["sessions"] == 1 and stats["open_handles"] == 0
    assert stats["spm"]["connections_in_use"] == 0
    watcher.disconnect()


def test_calls_in_flight_up_to_the_slots_then_backpressure(serve: ServeFn) -> None:
    """A client of a 4-slot server can issue 200 calls at once and every one is answered with its
    own data, none discarded."""
    server = serve(slots=4)

    async def main() -> list[bool]:
        client = await remote.connect_async(addr(server))
        assert client.slots == 4

        async def one(i: int) -> bool:
            out = bytearray(16)
            status = await client.call(STATELESS, 0, [b"%d" % i], [out])
            return status == PSA_SUCCESS and out == b"%d" % i

        # 200 calls at once: at most 4 are in flight, the rest wait; none is lost.
        results = await asyncio.gather(*(one(i) for i in range(200)))
        stats = await client.stats()
        await client.disconnect()
        assert stats["replies"] == 200 and stats["discarded"] == 0
        return results

    assert all(asyncio.run(main()))


def test_secure_panic_is_reported_to_every_client(serve: ServeFn) -> None:
    """A secure panic raises Panic in the calling client and is pushed to every other client, whose
    later calls raise Panic, while the server stays up to report the panicked state."""
    server = serve()
    a, b = remote.connect(addr(server)), remote.connect(addr(server))
    handle = a.connect(ECHO_SID, 1)
    with pytest.raises(psaspm.Panic) as info:
        a.call(handle, PANIC)
    assert info.value.record.partition == "TFM_SP_REMOTE_ECHO"
    assert info.value.record.api == "psa_panic"
    wait_for(lambda: b.panic is not None)
    assert b.panic is not None and b.panic.api == "psa_panic"
    with pytest.raises(psaspm.Panic):
        b.call(STATELESS, 0, [b"x"], [bytearray(1)])
    stats = b.stats()  # the server stays up to report its state
    assert stats["state"] == "panicked" and stats["panic"]["api"] == "psa_panic"
    a.disconnect()
    b.disconnect()


def test_restart_on_panic(serve: ServeFn) -> None:
    """With restart_on_panic the server reboots after a panic: calls work again, handles from before
    the panic are invalid (PROGRAMMER_ERROR), and stats show one restart."""
    server = serve(restart_on_panic=True)
    a = remote.connect(addr(server))
    handle = a.connect(ECHO_SID, 1)
    with pytest.raises(psaspm.Panic):
        a.call(handle, PANIC)
    out = bytearray(2)
    assert a.call(STATELESS, 0, [b"ok"], [out]) == PSA_SUCCESS and out == b"ok"
    assert a.call(handle, 0) == PSA_ERROR_PROGRAMMER_ERROR  # that boot's handles are gone
    stats = a.stats()
    assert stats["state"] == "running" and stats["restarts"] == 1
    a.disconnect()


# ------------------------------------------------------------------ raw protocol
class Raw:
    """A hand-driven connection, for frames the client library would never send."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.decoder = proto.FrameDecoder()
        self.frames: list[proto.Reply] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> proto.Reply:
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.frames += [proto.decode_reply(f) for f in self.decoder.feed(data)]
        return self.frames.pop(0)

    def closed(self) -> bool:
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except OSError:
            return True


def test_protocol_errors_leave_the_server_and_other_clients_alone(serve: ServeFn) -> None:
    """A bad frame gets a non-fatal error and leaves the stream in sync, an out-of-range length or a
    cut stream ends only that connection, and every error is counted while other clients are
    served."""
    server = serve()
    bystander = remote.connect(addr(server))
    raw = Raw(server.address.path)
    raw.send(proto.encode_stats(5))
    reply = raw.recv()
    assert isinstance(reply, proto.ErrorFrame) and reply.code == proto.ErrorCode.OUT_OF_ORDER
    assert reply.seq == 5 and not reply.fatal
    raw.send(proto.encode_hello(1))
    assert isinstance(raw.recv(), proto.Welcome)
    bad = [
        (proto.frame(proto.Kind.VERSION, 7, b"\x01"), proto.ErrorCode.MALFORMED),
        (proto.frame(0x42, 8), proto.ErrorCode.UNKNOWN_KIND),
        (proto.encode_hello(9), proto.ErrorCode.OUT_OF_ORDER),
        (proto.frame(proto.Kind.STATS, 10, version=2), proto.ErrorCode.UNSUPPORTED_VERSION),
        (
            proto.frame(proto.Kind.CALL, 11, struct.pack("<iiBBH", 1, 0, 9, 0, 0)),
            proto.ErrorCode.LIMIT,
        ),
    ]
    for data, code in bad:
        raw.send(data)
        reply = raw.recv()
        assert isinstance(reply, proto.ErrorFrame) and (reply.code, reply.fatal) == (code, False)
    # The stream is still in sync: a good request works.
    raw.send(proto.encode_call(12, STATELESS, 0, [b"fine"], [4]))
    assert raw.recv() == proto.Result(12, PSA_SUCCESS, (b"fine",))
    # A length prefix out of range: fatal, then the connection closes.
    raw.send(struct.pack("<I", proto.MAX_FRAME + 1) + b"junk")
    reply = raw.recv()
    assert isinstance(reply, proto.ErrorFrame) and reply.fatal
    assert reply.code == proto.ErrorCode.OVERSIZED
    assert raw.closed()
    # A stream cut inside a frame.
    cut = Raw(server.address.path)
    cut.send(proto.encode_hello(1) + proto.encode_stats(2)[:5])
    assert isinstance(cut.recv(), proto.Welcome)
    cut.sock.shutdown(socket.SHUT_WR)
    reply = cut.recv()
    assert isinstance(reply, proto.ErrorFrame) and reply.code == proto.ErrorCode.TRUNCATED
    out = bytearray(3)
    assert bystander.call(STATELESS, 0, [b"yes"], [out]) == PSA_SUCCESS and out == b"yes"
    assert bystander.stats()["protocol_errors"] == 8
    bystander.disconnect()


def test_a_call_split_anywhere_is_answered_as_if_sent_whole(serve: ServeFn) -> None:
    """A CALL whose bytes arrive in pieces (the length prefix alone, a cut header, a cut
    in-vector, one byte at a time), or glued to the next one, gets the same RESULT as one
    sent whole."""
    server = serve()
    raw = Raw(server.address.path)
    raw.send(proto.encode_hello(1))
    assert isinstance(raw.recv(), proto.Welcome)
    seq = 100
    for cuts in ([4], [4, 9], [14], [30, 33], list(range(1, 40))):
        seq += 1
        data = proto.encode_call(seq, STATELESS, 0, [b"pieces!"], [7])
        pos = 0
        for cut in cuts:
            raw.send(data[pos:cut])
            time.sleep(0.002)  # let each piece be its own read
            pos = cut
        raw.send(data[pos:])
        assert raw.recv() == proto.Result(seq, PSA_SUCCESS, (b"pieces!",))
    glued = proto.encode_call(200, STATELESS, 0, [b"one"], [3])
    glued += proto.encode_call(201, STATELESS, 0, [b"two"], [3])
    raw.send(glued)
    assert {raw.recv(), raw.recv()} == {
        proto.Result(200, PSA_SUCCESS, (b"one",)),
        proto.Result(201, PSA_SUCCESS, (b"two",)),
    }


def test_serves_with_poll_where_there_is_no_epoll(
    serve: ServeFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the select module has no epoll, the server waits with poll and serves the same
    calls, a client going away included."""
    monkeypatch.delattr(select, "epoll")
    server = serve()
    client = remote.connect(addr(server))
    out = bytearray(4)
    assert client.call(STATELESS, 0, [b"poll"], [out]) == PSA_SUCCESS and out == b"poll"
    client.disconnect()
    other = remote.connect(addr(server))
    assert other.call(STATELESS, 0, [b"more"], [out]) == PSA_SUCCESS and out == b"more"
    other.disconnect()


def test_duplicate_request_numbers_are_refused(serve: ServeFn) -> None:
    """A request reusing the number of a call still in flight is refused (OUT_OF_ORDER) without
    reaching the service, and the original call still gets its reply."""
    server = serve()
    watcher = remote.connect(addr(server))
    raw = Raw(server.address.path)
    raw.send(proto.encode_hello(1))
    assert isinstance(raw.recv(), proto.Welcome)
    handle = watcher.connect(ECHO_SID, 1)
    assert handle > 0
    raw.send(proto.encode_call(3, STATELESS, HOLD, [], []) + proto.encode_call(3, 1, 0, [], []))
    reply = raw.recv()
    assert isinstance(reply, proto.ErrorFrame) and reply.code == proto.ErrorCode.OUT_OF_ORDER
    assert watcher.call(STATELESS, RELEASE) == 1
    assert raw.recv() == proto.Result(3, PSA_SUCCESS, ())
    watcher.disconnect()


def test_sfn_backend_is_refused(serve: ServeFn) -> None:
    """The server refuses the SFN backend with a ConfigError: the mailbox NS agent needs the IPC
    backend."""
    with pytest.raises(psaspm.ConfigError, match="IPC backend"):
        serve(backend="sfn")


def test_tfm_manifest_list_with_its_own_mailbox_agent(serve: ServeFn, shared_dir: Path) -> None:
    """Served from TF-M's own manifest list, the server drives that list's mailbox NS agent
    (TFM_NS_MAILBOX_AGENT, pid 262) and remote calls work at isolation levels 1 to 3."""
    tfm_list = shared_dir / "tfm-manifests/trusted-firmware-m/tools/tfm_manifest_list.yaml"
    flags = [
        "PROTECTED_STORAGE",
        "INTERNAL_TRUSTED_STORAGE",
        "CRYPTO",
        "PLATFORM",
        "INITIAL_ATTESTATION",
        "FIRMWARE_UPDATE",
    ]
    config = {f"TFM_PARTITION_{flag}": 0 for flag in flags}
    config["TFM_PARTITION_NS_AGENT_MAILBOX"] = 1
    for isolation in (1, 2, 3):
        server = serve(sources=[tfm_list, SERVICES], config=config, isolation=isolation)
        assert server.served.agent == "TFM_NS_MAILBOX_AGENT"
        assert server.served.system.manifest.partitions[0].pid == 262  # TF-M's list says so
        with remote.connect(addr(server)) as client:
            out = bytearray(5)
            assert client.call(STATELESS, 0, [b"hello"], [out]) == PSA_SUCCESS
            assert out == b"hello"


def test_shutdown_finishes_calls_in_flight_then_closes(serve: ServeFn) -> None:
    """Stopping the server waits up to its timeout for a call in flight, then answers it with a
    fatal SHUTDOWN error, closes the connections and removes the socket file."""
    server = serve()
    path = Path(server.address.path)
    client = remote.connect(addr(server))
    handle = client.connect(ECHO_SID, 1)
    raw = Raw(server.address.path)
    raw.send(proto.encode_hello(1))
    assert isinstance(raw.recv(), proto.Welcome)
    raw.send(proto.encode_call(2, handle, HOLD, [], []))  # refused: not raw's handle
    assert raw.recv() == proto.Result(2, PSA_ERROR_PROGRAMMER_ERROR, ())
    raw.send(proto.encode_call(3, STATELESS, HOLD, [], []))  # held until the timeout
    wait_for(lambda: probe(client)["held"] == 1)
    started = time.monotonic()
    server.stop(timeout=0.5)
    assert 0.4 < time.monotonic() - started < 5
    reply = raw.recv()
    assert isinstance(reply, proto.ErrorFrame) and reply.code == proto.ErrorCode.SHUTDOWN
    assert reply.fatal and raw.closed()
    assert not path.exists()
    with pytest.raises(remote.RemoteError):
        client.call(handle, 0)
    client.disconnect()


def test_calls_beyond_the_slots_wait_in_the_client(serve: ServeFn) -> None:
    """No more calls than the mailbox has slots reach the agent at once: the rest wait (none is
    dropped) and go through as slots free up."""
    server = serve(slots=4)

    async def main() -> list[int]:
        client = await remote.connect_async(addr(server))
        # Six calls at once: the service answers BATCH calls only when 4 (then 2) are held,
        # so it would see one batch of 6, or hang, if more than 4 were ever in flight.
        sizes = [4, 4, 4, 4, 2, 2]
        results = await asyncio.gather(
            *(client.call(STATELESS, BATCH, [bytes([n])]) for n in sizes)
        )
        await client.disconnect()
        return results

    assert asyncio.run(main()) == [PSA_SUCCESS] * 6
    with remote.connect(addr(server)) as watcher:
        assert probe(watcher)["batches"] == [4, 2]


def test_shutdown_lets_a_call_in_flight_finish(serve: ServeFn) -> None:
    """A graceful stop waits for a call already in flight, delivers its reply, then closes the
    connection and removes the socket file."""
    server = serve()
    path = Path(server.address.path)
    client = remote.connect(addr(server))
    results: list[int] = []
    caller = threading.Thread(target=lambda: results.append(client.call(STATELESS, SLOW)))
    caller.start()
    wait_for(lambda: server.stats()["slots_in_use"] == 1)
    server.stop(timeout=5)
    caller.join(5)
    assert results == [PSA_SUCCESS]
    assert not path.exists()
    with pytest.raises(remote.RemoteError):
        client.call(STATELESS, 0)
    client.disconnect()


def test_64_clients_at_once_while_others_send_garbage(serve: ServeFn) -> None:
    """64 clients calling at once are all answered with their own data under distinct client IDs,
    while clients sending garbage each get an ERROR frame and are cut off, and the server keeps
    serving."""
    import random

    server = serve(slots=16, max_connections=96)
    clients, calls = 64, 12
    garbage = [random.Random(seed).randbytes(4096) for seed in range(4)]

    def vandal(data: bytes) -> bool:
        raw = Raw(server.address.path)
        if data is garbage[0]:
            raw.send(proto.encode_hello(1))  # one that says HELLO first
            assert isinstance(raw.recv(), proto.Welcome)
        raw.send(data)
        reply = raw.recv()
        return isinstance(reply, proto.ErrorFrame) and raw.closed()

    async def main() -> tuple[list[int], list[bool], list[bool]]:
        conns = await asyncio.gather(*(remote.connect_async(addr(server)) for _ in range(clients)))

        async def lane(client: remote.AsyncRemoteClient) -> bool:
            handle = await client.connect(ECHO_SID, 1)
            good = handle > 0
            for i in range(calls):
                payload = b"%d:%d" % (client.client_id, i)
                out = bytearray(len(payload))
                status = await client.call(handle, ECHO, [payload], [out])
                good = good and status == PSA_SUCCESS and out == payload
            await client.close(handle)
            return good

        loop = asyncio.get_running_loop()
        vandals = [loop.run_in_executor(None, vandal, data) for data in garbage]
        results = await asyncio.gather(*(lane(c) for c in conns))
        cut_off = list(await asyncio.gather(*vandals))
        ids = [c.client_id for c in conns]
        for client in conns:
            await client.disconnect()
        return ids, list(results), cut_off

    ids, results, cut_off = asyncio.run(main())
    assert all(results) and len(set(ids)) == clients
    assert all(cut_off)
    with remote.connect(addr(server)) as watcher:
        out = bytearray(5)
        assert watcher.call(STATELESS, 0, [b"after"], [out]) == PSA_SUCCESS and out == b"after"
        stats = watcher.stats()
    assert stats["protocol_errors"] >= len(garbage)
    assert stats["replies"] == clients * (calls + 2) + 1 and stats["discarded"] == 0


def test_a_call_after_disconnect_says_the_client_disconnected(serve: ServeFn) -> None:
    """After disconnect(), a call raises RemoteError with code DISCONNECTED saying that this
    client called disconnect(), not that the server closed the connection."""
    server = serve()
    client = remote.connect(addr(server))
    client.disconnect()
    with pytest.raises(remote.RemoteError) as info:
        client.call(STATELESS, 0)
    assert info.value.code == remote.DISCONNECTED
    assert "disconnect()" in str(info.value) and "server" not in str(info.value)

    async def main() -> remote.RemoteError:
        client = await remote.connect_async(addr(server))
        await client.disconnect()
        try:
            await client.call(STATELESS, 0)
        except remote.RemoteError as exc:
            return exc
        raise AssertionError("the call went through")

    error = asyncio.run(main())
    assert error.code == remote.DISCONNECTED and "disconnect()" in str(error)


def test_an_out_of_range_port_is_named_as_such() -> None:
    """A TCP port above 65535 is refused as out of range (0..65535), by the server's address
    parser and by remote.connect."""
    from psaspm.mailbox.server import parse_address

    with pytest.raises(psaspm.ConfigError, match=r"port 99999 is out of range \(0\.\.65535\)"):
        parse_address("tcp:127.0.0.1:99999")
    with pytest.raises(psaspm.ConfigError, match="out of range"):
        remote.connect("tcp:127.0.0.1:99999")
    with pytest.raises(psaspm.ConfigError, match="expected tcp:HOST:PORT"):
        parse_address("tcp:nonsense")


def test_stop_interrupts_a_service_that_never_returns(serve: ServeFn) -> None:
    """stop() ends a server whose service loops forever: at the shutdown deadline the partition
    code is interrupted, the caller gets a SHUTDOWN error and the server names what it stopped."""
    server = serve()
    client = remote.connect(addr(server))
    caller, errors = call_in_thread(client, LOOP)
    wait_for(lambda: server.stats()["slots_in_use"] == 1)
    server.stop(timeout=0.5)
    caller.join(10)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], remote.RemoteError)
    assert errors[0].code == proto.ErrorCode.SHUTDOWN
    assert server.interrupted is not None
    assert "TFM_SP_REMOTE_ECHO" in server.interrupted and "remote_echo.py" in server.interrupted
    assert not Path(server.address.path).exists()
    client.disconnect()


def test_a_new_client_never_gets_the_id_of_one_that_left(serve: ServeFn) -> None:
    """A client connecting after another has gone and been cleaned up gets the next unused client
    ID, not the departed client's, so services never confuse the two."""
    server = serve()
    first = remote.connect(addr(server))
    gone = first.client_id
    first.disconnect()
    with remote.connect(addr(server)) as watcher:
        wait_for(lambda: watcher.stats()["sessions"] == 1)  # the first one's session ended
        later = remote.connect(addr(server))
        assert gone == -0x04000000 and watcher.client_id == -0x04000001
        assert later.client_id == -0x04000002
        later.disconnect()


def test_served_system_runs_c_partitions(
    serve: ServeFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psaspm serve runs C partition code as it runs Python code: a remote client's ECHO
    through examples/echo_c gets its bytes back and the count kept in the C session."""
    monkeypatch.setenv("PSASPM_CACHE", str(tmp_path / "cache"))  # never ~/.cache in tests
    echo_c = Path(__file__).resolve().parents[2] / "examples" / "echo_c" / "echo_service.yaml"
    server = serve(sources=[echo_c])
    with remote.connect(addr(server)) as client:
        handle = client.connect(0xF000, 1)
        out = bytearray(5)
        assert client.call(handle, 0, [b"hello"], [out]) == PSA_SUCCESS
        assert out == b"hello"
        count = bytearray(4)
        assert client.call(handle, 1, [], [count]) == PSA_SUCCESS
        assert int.from_bytes(count, "little") == 1
        client.close(handle)
