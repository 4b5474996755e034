"""A non-secure client of a system served by ``psaspm serve`` (another process).

``connect(ADDR)`` returns a blocking client with the methods of
``system.ns_client()`` (contract section 4); ``await connect_async(ADDR)``
returns the asyncio variant.  ``ADDR`` is ``unix:PATH`` or ``tcp:HOST:PORT``.
Each client is one connection, and one NS client with its own negative client
ID (``client.client_id``, what services see in ``msg.client_id``).

Several calls may be in flight per client (from several threads, or tasks),
up to the server's slot count; beyond that a caller waits for a slot.  A
secure panic raises :class:`psaspm.Panic` from the calls it hits; a lost
connection raises :class:`RemoteError` (a ``ConnectionError``).

Vectors follow ``ns.call``: in-vectors bytes-like, out-vectors ``bytearray``s
resized to what the service wrote.  Misuse that the SPM would reject
(more than ``PSA_MAX_IOVEC`` vectors, an out-vector that is not a bytearray,
a pointer vector) returns ``PSA_ERROR_PROGRAMMER_ERROR`` without being sent;
a vector over the wire protocol's size limits raises ``ValueError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
from collections.abc import Sequence
from typing import Any

from psaspm.consts import PSA_ERROR_PROGRAMMER_ERROR, PSA_IPC_CALL, PSA_MAX_IOVEC
from psaspm.errors import Panic, PanicRecord
from psaspm.mailbox import protocol as proto
from psaspm.mailbox.protocol import ErrorCode

__all__ = ["AsyncRemoteClient", "RemoteClient", "RemoteError", "connect", "connect_async"]


class RemoteError(ConnectionError):
    """The server refused a request or the connection failed; ``code`` is the ErrorCode."""

    def __init__(self, code: int, text: str) -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = str(code)
        super().__init__(f"{name}: {text}")
        self.code = code
        self.text = text


def _split(addr: str) -> tuple[int, Any]:
    if addr.startswith("tcp:"):
        host, _, port = addr[4:].rpartition(":")
        return socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET, (
            host.strip("[]"),
            int(port),
        )
    return socket.AF_UNIX, addr.removeprefix("unix:")


def _check_vectors(in_vecs: Sequence[Any], out_vecs: Sequence[Any]) -> list[bytes] | None:
    """In-vectors as bytes, or None when the SPM would call it a programmer error."""
    if len(in_vecs) + len(out_vecs) > PSA_MAX_IOVEC:
        return None
    ins: list[bytes] = []
    for vec in in_vecs:
        if not isinstance(vec, bytes | bytearray | memoryview):
            return None
        ins.append(bytes(vec))
    for out in out_vecs:
        if out.__class__ is not bytearray:
            return None
    return ins


def _result(reply: proto.Reply) -> proto.Result:
    if isinstance(reply, proto.ErrorFrame):
        if reply.code == ErrorCode.PANIC:
            raise Panic(_panic_record(reply.text))
        raise RemoteError(reply.code, reply.text)
    if not isinstance(reply, proto.Result):
        raise RemoteError(ErrorCode.MALFORMED, f"unexpected reply {type(reply).__name__}")
    return reply


def _panic_record(text: str) -> PanicRecord:
    try:
        data = json.loads(text)
        return PanicRecord(str(data["partition"]), str(data["api"]), str(data["reason"]))
    except (ValueError, KeyError, TypeError):
        return PanicRecord("?", "?", text)


def _fill(out_vecs: Sequence[bytearray], outs: Sequence[bytes]) -> None:
    for buf, data in zip(out_vecs, outs, strict=False):
        buf[:] = data


class _Base:
    client_id: int
    slots: int
    panic: PanicRecord | None

    def _encode_call(
        self,
        seq: int,
        handle: int,
        type: int,
        in_vecs: Sequence[Any],
        out_vecs: Sequence[Any],
    ) -> bytes | None:
        ins = _check_vectors(in_vecs, out_vecs)
        if ins is None or type.__class__ is not int or handle.__class__ is not int:
            return None
        if not (-(1 << 31) <= handle < (1 << 31) and -(1 << 31) <= type < (1 << 31)):
            return None
        return proto.encode_call(seq, handle, type, ins, [len(o) for o in out_vecs])


# ------------------------------------------------------------------ blocking
class RemoteClient(_Base):
    """A blocking client; thread-safe (calls from several threads run concurrently)."""

    def __init__(self, sock: socket.socket, timeout: float | None = None) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._seqs = itertools.count(2)
        self._waiters: dict[int, list[Any]] = {}  # seq -> [event, reply]
        self._closed: RemoteError | None = None
        self.panic = None
        decoder = proto.FrameDecoder()
        sock.settimeout(timeout)
        sock.sendall(proto.encode_hello(1))
        welcome = None
        while welcome is None:
            data = sock.recv(65536)
            if not data:
                raise RemoteError(ErrorCode.TRUNCATED, "the server closed the connection")
            for frame in decoder.feed(data):
                reply = proto.decode_reply(frame)
                if isinstance(reply, proto.ErrorFrame):
                    raise RemoteError(reply.code, reply.text)
                if isinstance(reply, proto.Welcome):
                    welcome = reply
        sock.settimeout(None)
        self.client_id = welcome.client_id
        self.slots = welcome.slots
        self._slot_sem = threading.BoundedSemaphore(self.slots)
        self._decoder = decoder
        self._reader = threading.Thread(target=self._read, name="psaspm-remote", daemon=True)
        self._reader.start()

    # ---- transport
    def _read(self) -> None:
        error = RemoteError(ErrorCode.TRUNCATED, "the server closed the connection")
        try:
            while True:
                data = self._sock.recv(1 << 16)
                if not data:
                    break
                for frame in self._decoder.feed(data):
                    reply = proto.decode_reply(frame)
                    if isinstance(reply, proto.ErrorFrame) and reply.fatal:
                        error = RemoteError(reply.code, reply.text)
                    self._dispatch(reply)
                if self._decoder.error is not None:
                    error = RemoteError(self._decoder.error.code, self._decoder.error.text)
                    break
        except (OSError, proto.ProtocolError) as exc:
            error = RemoteError(ErrorCode.TRUNCATED, str(exc))
        with self._lock:
            self._closed = error
            waiters = list(self._waiters.values())
            self._waiters.clear()
        for waiter in waiters:
            waiter[1] = error
            waiter[0].set()

    def _dispatch(self, reply: proto.Reply) -> None:
        seq = getattr(reply, "seq", 0)
        if seq == 0:
            if isinstance(reply, proto.ErrorFrame) and reply.code == ErrorCode.PANIC:
                self.panic = _panic_record(reply.text)
            return
        with self._lock:
            waiter = self._waiters.pop(seq, None)
        if waiter is not None:
            waiter[1] = reply
            waiter[0].set()

    def _request(self, make: Any) -> proto.Reply:
        with self._slot_sem:
            event = threading.Event()
            waiter: list[Any] = [event, None]
            with self._lock:
                if self._closed is not None:
                    raise self._closed
                seq = next(self._seqs) & proto.MAX_SEQ or next(self._seqs)
                self._waiters[seq] = waiter
            data = make(seq)
            try:
                with self._send_lock:
                    self._sock.sendall(data)
            except OSError as exc:
                with self._lock:
                    self._waiters.pop(seq, None)
                raise RemoteError(ErrorCode.TRUNCATED, str(exc)) from None
            event.wait()
        reply = waiter[1]
        if isinstance(reply, RemoteError):
            raise reply
        return reply  # type: ignore[no-any-return]

    # ---- the NS client API
    def framework_version(self) -> int:
        return _result(self._request(proto.encode_framework_version)).value

    def version(self, sid: int) -> int:
        return _result(self._request(lambda seq: proto.encode_version(seq, sid))).value

    def connect(self, sid: int, version: int) -> int:
        return _result(self._request(lambda seq: proto.encode_connect(seq, sid, version))).value

    def call(
        self,
        handle: int,
        type: int = PSA_IPC_CALL,
        in_vecs: Sequence[Any] = (),
        out_vecs: Sequence[bytearray] = (),
    ) -> int:
        if self._encode_call(1, handle, type, in_vecs, out_vecs) is None:
            return PSA_ERROR_PROGRAMMER_ERROR
        result = _result(
            self._request(lambda seq: self._encode_call(seq, handle, type, in_vecs, out_vecs))
        )
        _fill(out_vecs, result.outs)
        return result.value

    def close(self, handle: int) -> None:
        if handle.__class__ is not int or not -(1 << 31) <= handle < (1 << 31):
            return
        _result(self._request(lambda seq: proto.encode_close(seq, handle)))

    def stats(self) -> dict[str, Any]:
        """The server's STATS object (``docs/mailbox-protocol.md``)."""
        reply = self._request(proto.encode_stats)
        if not isinstance(reply, proto.StatsResult):
            _result(reply)
            raise RemoteError(ErrorCode.MALFORMED, "no stats in the reply")
        return reply.stats

    # ---- the connection
    def disconnect(self) -> None:
        """Close the connection (the server closes this client's secure connections)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if self._reader.is_alive() and self._reader is not threading.current_thread():
            self._reader.join(5)

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


def connect(addr: str, timeout: float | None = 10.0) -> RemoteClient:
    """Connect to ``psaspm serve`` at ``addr`` (``unix:PATH`` or ``tcp:HOST:PORT``)."""
    family, where = _split(addr)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(where)
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return RemoteClient(sock, timeout)
    except BaseException:
        sock.close()
        raise


# ------------------------------------------------------------------ asyncio
class AsyncRemoteClient(_Base):
    """The asyncio variant: the same methods, as coroutines; many tasks may share it."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, welcome: proto.Welcome
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.client_id = welcome.client_id
        self.slots = welcome.slots
        self.panic = None
        self._slot_sem = asyncio.Semaphore(self.slots)
        self._seqs = itertools.count(2)
        self._waiters: dict[int, asyncio.Future[proto.Reply]] = {}
        self._closed: RemoteError | None = None
        self._decoder = proto.FrameDecoder()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        error = RemoteError(ErrorCode.TRUNCATED, "the server closed the connection")
        try:
            while True:
                data = await self._reader.read(1 << 16)
                if not data:
                    break
                for frame in self._decoder.feed(data):
                    reply = proto.decode_reply(frame)
                    if isinstance(reply, proto.ErrorFrame) and reply.fatal:
                        error = RemoteError(reply.code, reply.text)
                    seq = getattr(reply, "seq", 0)
                    if seq == 0:
                        if isinstance(reply, proto.ErrorFrame) and reply.code == ErrorCode.PANIC:
                            self.panic = _panic_record(reply.text)
                        continue
                    future = self._waiters.pop(seq, None)
                    if future is not None and not future.done():
                        future.set_result(reply)
                if self._decoder.error is not None:
                    break
        except (OSError, proto.ProtocolError) as exc:
            error = RemoteError(ErrorCode.TRUNCATED, str(exc))
        self._closed = error
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)
        self._waiters.clear()

    async def _request(self, make: Any) -> proto.Reply:
        async with self._slot_sem:
            if self._closed is not None:
                raise self._closed
            seq = next(self._seqs) & proto.MAX_SEQ or next(self._seqs)
            future: asyncio.Future[proto.Reply] = asyncio.get_running_loop().create_future()
            self._waiters[seq] = future
            self._writer.write(make(seq))
            await self._writer.drain()
            return await future

    async def framework_version(self) -> int:
        return _result(await self._request(proto.encode_framework_version)).value

    async def version(self, sid: int) -> int:
        return _result(await self._request(lambda seq: proto.encode_version(seq, sid))).value

    async def connect(self, sid: int, version: int) -> int:
        reply = await self._request(lambda seq: proto.encode_connect(seq, sid, version))
        return _result(reply).value

    async def call(
        self,
        handle: int,
        type: int = PSA_IPC_CALL,
        in_vecs: Sequence[Any] = (),
        out_vecs: Sequence[bytearray] = (),
    ) -> int:
        if self._encode_call(1, handle, type, in_vecs, out_vecs) is None:
            return PSA_ERROR_PROGRAMMER_ERROR
        result = _result(
            await self._request(lambda seq: self._encode_call(seq, handle, type, in_vecs, out_vecs))
        )
        _fill(out_vecs, result.outs)
        return result.value

    async def close(self, handle: int) -> None:
        if handle.__class__ is not int or not -(1 << 31) <= handle < (1 << 31):
            return
        _result(await self._request(lambda seq: proto.encode_close(seq, handle)))

    async def stats(self) -> dict[str, Any]:
        reply = await self._request(proto.encode_stats)
        if not isinstance(reply, proto.StatsResult):
            _result(reply)
            raise RemoteError(ErrorCode.MALFORMED, "no stats in the reply")
        return reply.stats

    async def disconnect(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        self._task.cancel()

    async def __aenter__(self) -> AsyncRemoteClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


async def connect_async(addr: str) -> AsyncRemoteClient:
    """The asyncio variant of :func:`connect`."""
    family, where = _split(addr)
    if family == socket.AF_UNIX:
        reader, writer = await asyncio.open_unix_connection(where)
    else:
        reader, writer = await asyncio.open_connection(*where)
    writer.write(proto.encode_hello(1))
    decoder = proto.FrameDecoder()
    while True:
        data = await reader.read(1 << 16)
        if not data:
            writer.close()
            raise RemoteError(ErrorCode.TRUNCATED, "the server closed the connection")
        frames = decoder.feed(data)
        if frames:
            break
    reply = proto.decode_reply(frames[0])
    if not isinstance(reply, proto.Welcome):
        writer.close()
        if isinstance(reply, proto.ErrorFrame):
            raise RemoteError(reply.code, reply.text)
        raise RemoteError(ErrorCode.MALFORMED, "no WELCOME")
    client = AsyncRemoteClient(reader, writer, reply)
    for frame in frames[1:]:  # an unsolicited frame right behind the WELCOME
        later = proto.decode_reply(frame)
        if isinstance(later, proto.ErrorFrame) and later.code == ErrorCode.PANIC and not later.seq:
            client.panic = _panic_record(later.text)
    client._decoder = decoder
    return client
