"""A non-secure client of a system served by ``psaspm serve`` (another process).

``connect(ADDR)`` returns a blocking client with the methods of
``system.ns_client()`` (contract section 4); ``await connect_async(ADDR)``
returns the asyncio variant.  ``ADDR`` is ``unix:PATH`` or ``tcp:HOST:PORT``.
Each client is one connection, and one NS client with its own negative client
ID (``client.client_id``, what services see in ``msg.client_id``).

Several calls may be in flight per client (from several threads, or tasks),
up to the server's slot count; beyond that a caller waits for a slot.  A
secure panic raises :class:`psaspm.Panic` from the calls it hits; a lost
connection raises :class:`RemoteError` (a ``ConnectionError``), and so does a
call after ``disconnect()`` (code :data:`DISCONNECTED`).  A malformed address
is a :class:`psaspm.ConfigError`.

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
from collections.abc import Callable, Sequence
from typing import Any

from psaspm.consts import PSA_ERROR_PROGRAMMER_ERROR, PSA_IPC_CALL, PSA_MAX_IOVEC
from psaspm.errors import Panic, PanicRecord
from psaspm.mailbox import protocol as proto
from psaspm.mailbox.address import parse_address
from psaspm.mailbox.protocol import ErrorCode

__all__ = [
    "DISCONNECTED",
    "AsyncRemoteClient",
    "RemoteClient",
    "RemoteError",
    "connect",
    "connect_async",
]

DISCONNECTED = 0  # RemoteError.code of a call made after disconnect() (no wire error code)


class RemoteError(ConnectionError):
    """The server refused a request or the connection failed; ``code`` is the ErrorCode
    (or :data:`DISCONNECTED`)."""

    def __init__(self, code: int, text: str) -> None:
        if code == DISCONNECTED:
            name = "DISCONNECTED"
        else:
            try:
                name = ErrorCode(code).name
            except ValueError:
                name = str(code)
        super().__init__(f"{name}: {text}")
        self.code = code
        self.text = text


def _disconnected_error() -> RemoteError:
    return RemoteError(
        DISCONNECTED, "this client called disconnect(); connect again to make more calls"
    )


def _split(addr: str) -> tuple[int, Any]:
    """The socket family and address of ``addr`` (a ConfigError if it is not one)."""
    where = parse_address(addr, allow_remote=True)
    if where.kind == "tcp":
        family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
        return family, (where.host, where.port)
    return socket.AF_UNIX, where.path


def _check_vectors(in_vecs: Sequence[Any], out_vecs: Sequence[Any]) -> list[bytes] | None:
    """In-vectors as bytes, or None when the SPM would call it a programmer error."""
    if len(in_vecs) + len(out_vecs) > PSA_MAX_IOVEC:
        return None
    ins: list[bytes] = []
    for vec in in_vecs:
        cls = vec.__class__
        if cls is bytes:
            ins.append(vec)
        elif isinstance(vec, bytes | bytearray | memoryview):
            ins.append(bytes(vec))
        else:
            return None
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


_I32_MIN, _I32_END = -(1 << 31), 1 << 31


class _Base:
    client_id: int
    slots: int

    @staticmethod
    def _call_vectors(
        handle: int, type: int, in_vecs: Sequence[Any], out_vecs: Sequence[Any]
    ) -> list[bytes] | None:
        """The in-vectors to send, or None: a call the SPM would refuse as a programmer error."""
        if type.__class__ is not int or handle.__class__ is not int:
            return None
        if not (_I32_MIN <= handle < _I32_END and _I32_MIN <= type < _I32_END):
            return None
        return _check_vectors(in_vecs, out_vecs)


# ------------------------------------------------------------------ blocking
class _Waiter:
    """One request in flight: its reply once it arrives, and an event if its caller sleeps."""

    __slots__ = ("done", "event", "reply")

    def __init__(self) -> None:
        self.done = False
        self.reply: proto.Reply | RemoteError | None = None
        self.event: threading.Event | None = None


class RemoteClient(_Base):
    """A blocking client; thread-safe (calls from several threads run concurrently).

    No thread of its own: a caller waiting for its reply reads the socket
    itself (one caller at a time; it hands every other caller its reply), so a
    call from a single thread is a send and a receive with no thread switch.
    """

    def __init__(self, sock: socket.socket, timeout: float | None = None) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._slot_free = threading.Condition(self._lock)
        self._seq = 1
        self._waiters: dict[int, _Waiter] = {}
        self._inflight = 0
        self._slot_waiters = 0
        self._reading = False  # a caller is reading the socket for everyone
        self._closed: RemoteError | None = None
        self._fatal: RemoteError | None = None  # a fatal ERROR frame the server sent
        self._disconnected = False
        self._panic: PanicRecord | None = None
        decoder = proto.FrameDecoder()
        sock.settimeout(timeout)
        sock.sendall(proto.encode_hello(1))
        welcome = None
        while welcome is None:
            data = sock.recv(65536)
            if not data:
                raise RemoteError(ErrorCode.TRUNCATED, "the server closed the connection")
            frames = decoder.feed(data)
            for index, frame in enumerate(frames):
                reply = proto.decode_reply(frame)
                if isinstance(reply, proto.ErrorFrame):
                    raise RemoteError(reply.code, reply.text)
                if isinstance(reply, proto.Welcome):
                    welcome = reply
                    for later in frames[index + 1 :]:  # e.g. a PANIC right behind it
                        self._frame(later)
                    break
        sock.settimeout(None)
        self.client_id = welcome.client_id
        self.slots = welcome.slots
        self._decoder = decoder
        self._recv_buf = bytearray(1 << 16)
        self._recv_view = memoryview(self._recv_buf)

    @property
    def panic(self) -> PanicRecord | None:
        """The secure panic the server reported (None while the SPE runs)."""
        if self._panic is None and self._closed is None:
            self._poll()
        return self._panic

    # ---- transport
    def _recv(self) -> bytes:
        """One receive, into a buffer kept for the client's life (the reading caller only)."""
        size = self._sock.recv_into(self._recv_buf)
        return self._recv_view[:size].tobytes()

    def _poll(self) -> None:
        """Take in what the server sent unasked (a PANIC), without blocking."""
        with self._lock:
            if self._reading:
                return
            self._reading = True
        try:
            try:
                data = self._sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fail(RemoteError(ErrorCode.TRUNCATED, str(exc)))
                return
            self._received(data)
        finally:
            self._hand_over()

    def _received(self, data: bytes) -> None:
        """Frames from one receive (the reading caller only); b"": the stream ended."""
        if not data:
            self._fail(
                self._fatal or RemoteError(ErrorCode.TRUNCATED, "the server closed the connection")
            )
            return
        decoder = self._decoder
        try:
            for frame in decoder.feed(data):
                self._frame(frame)
        except proto.ProtocolError as exc:
            self._fail(RemoteError(exc.code, exc.text))
            return
        if decoder.error is not None:
            self._fail(RemoteError(decoder.error.code, decoder.error.text))

    def _frame(self, frame: proto.Frame) -> None:
        reply = proto.decode_reply(frame)
        seq: int = getattr(reply, "seq", 0)
        if isinstance(reply, proto.ErrorFrame):
            if reply.fatal:
                self._fatal = RemoteError(reply.code, reply.text)
            if seq == 0 and reply.code == ErrorCode.PANIC:
                self._panic = _panic_record(reply.text)
        if seq == 0:
            return
        with self._lock:
            waiter = self._waiters.pop(seq, None)
            if waiter is not None:
                waiter.reply = reply
                waiter.done = True
                if waiter.event is not None:
                    waiter.event.set()

    def _fail(self, error: RemoteError) -> None:
        if self._disconnected:
            error = _disconnected_error()
        with self._lock:
            if self._closed is None:
                self._closed = error
            waiters = list(self._waiters.values())
            self._waiters.clear()
            for waiter in waiters:
                waiter.reply = self._closed
                waiter.done = True
                if waiter.event is not None:
                    waiter.event.set()

    def _hand_over(self) -> None:
        """Stop reading; wake one sleeping caller so that it reads on."""
        with self._lock:
            self._hand_over_locked()

    def _hand_over_locked(self) -> None:
        self._reading = False
        for waiter in self._waiters.values():
            if waiter.event is not None and not waiter.done:
                waiter.event.set()
                break

    def _wait(self, waiter: _Waiter) -> None:
        lock = self._lock
        event: threading.Event | None = None
        while True:
            with lock:
                if waiter.done:
                    return
                lead = not self._reading
                if lead:
                    self._reading = True
                else:
                    event = waiter.event
                    if event is None:
                        event = waiter.event = threading.Event()
                    else:
                        event.clear()
            if event is not None and not lead:
                event.wait()
                continue
            try:
                try:
                    data = self._recv()
                except OSError as exc:
                    self._fail(RemoteError(ErrorCode.TRUNCATED, str(exc)))
                else:
                    self._received(data)
            finally:
                self._hand_over()

    def _request(self, make: Callable[[int], bytes]) -> proto.Reply:
        if self._disconnected:
            raise _disconnected_error()
        waiter = _Waiter()
        with self._lock:
            while self._inflight >= self.slots and self._closed is None:
                self._slot_waiters += 1
                self._slot_free.wait()
                self._slot_waiters -= 1
            if self._closed is not None:
                raise self._closed
            self._inflight += 1
            seq = self._seq = (self._seq % proto.MAX_SEQ) + 1
            self._waiters[seq] = waiter
        try:
            data = make(seq)
            with self._send_lock:
                self._sock.sendall(data)
        except BaseException as exc:
            with self._lock:
                self._waiters.pop(seq, None)
                self._release_slot()
            if isinstance(exc, OSError):
                if self._disconnected:
                    raise _disconnected_error() from None
                raise RemoteError(ErrorCode.TRUNCATED, str(exc)) from None
            raise
        try:
            self._wait(waiter)
        finally:
            with self._lock:
                self._release_slot()
        reply = waiter.reply
        if isinstance(reply, RemoteError):
            raise reply
        assert reply is not None  # done: a reply or the error that ended the connection
        return reply

    def _exchange(
        self, handle: int, type: int, ins: list[bytes], caps: list[int]
    ) -> proto.Reply | None:
        """A CALL when this client has nothing else in flight: send it and read until its
        reply, as ``_wait`` reads, with no thread to hand over to; None if it is not
        alone."""
        lock = self._lock
        waiter = _Waiter()
        with lock:
            if self._reading or self._inflight or self._closed is not None or self._disconnected:
                return None
            self._reading = True
            self._inflight = 1
            seq = self._seq = (self._seq % proto.MAX_SEQ) + 1
            self._waiters[seq] = waiter
        try:
            data = proto.encode_call(seq, handle, type, ins, caps)
            sock = self._sock
            decoder = self._decoder
            buf = self._recv_buf
            view = self._recv_view  # parsed through: one copy per out-vector
            with self._send_lock:
                sock.sendall(data)
            while not waiter.done:
                size = sock.recv_into(buf)
                if decoder.idle:
                    # The usual read: exactly this call's RESULT, parsed where it landed.
                    result = proto.single_result(view, size)
                    if result is not None and result.seq == seq:
                        return result
                self._received(self._recv_view[:size].tobytes())
        except OSError as exc:
            self._fail(RemoteError(ErrorCode.TRUNCATED, str(exc)))
        finally:
            with lock:
                self._waiters.pop(seq, None)
                self._release_slot()
                self._hand_over_locked()  # calls made meanwhile: one reads on
        reply = waiter.reply
        if isinstance(reply, RemoteError):
            raise reply
        assert reply is not None  # done: a reply or the error that ended the connection
        return reply

    def _release_slot(self) -> None:
        self._inflight -= 1
        if self._slot_waiters:
            self._slot_free.notify()

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
        ins = self._call_vectors(handle, type, in_vecs, out_vecs)
        if ins is None:
            return PSA_ERROR_PROGRAMMER_ERROR
        caps = [len(out) for out in out_vecs]
        reply = self._exchange(handle, type, ins, caps)
        if reply is None:  # another call of this client is reading: the general path
            reply = self._request(lambda seq: proto.encode_call(seq, handle, type, ins, caps))
        if reply.__class__ is not proto.Result:
            reply = _result(reply)
        if reply.outs:
            _fill(out_vecs, reply.outs)
        return reply.value

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
        """Close the connection (the server closes this client's secure connections).

        Calls made afterwards raise :class:`RemoteError` with code
        :data:`DISCONNECTED`."""
        self._disconnected = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._fail(_disconnected_error())

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
        self.panic: PanicRecord | None = None
        self._disconnected = False
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
        if self._disconnected:
            error = _disconnected_error()
        self._closed = error
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)
        self._waiters.clear()

    async def _request(self, make: Any) -> proto.Reply:
        if self._disconnected:
            raise _disconnected_error()
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
        ins = self._call_vectors(handle, type, in_vecs, out_vecs)
        if ins is None:
            return PSA_ERROR_PROGRAMMER_ERROR
        caps = [len(out) for out in out_vecs]
        result = _result(
            await self._request(lambda seq: proto.encode_call(seq, handle, type, ins, caps))
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
        """Close the connection; later calls raise RemoteError (code DISCONNECTED)."""
        self._disconnected = True
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
