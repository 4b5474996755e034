"""``psaspm serve``: a secure system behind a socket, fed through a mailbox NS agent.

Two threads:

- the **SPE thread** owns the system (and so its greenlets): it boots it, and
  loops taking events from a queue.  It is also the non-secure side of the
  mailbox: it moves requests into free mailbox slots, raises the mailbox
  interrupt line (which runs the SPE until it is idle again, the agent
  partition issuing the calls), and turns the replies the agent posted into
  frames.  Every piece of session state lives here, so the SPE stays
  single-threaded and deterministic.
- the **transport thread** runs an asyncio loop: it accepts connections,
  decodes frames (``psaspm.mailbox.protocol``), answers protocol errors itself,
  hands requests to the SPE thread through the queue, and writes the frames the
  SPE thread hands back (in batches, one loop wake-up per SPE pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psaspm.agents.mailbox import MAX_SLOTS, Mailbox, Op, Slot, agent_module
from psaspm.errors import ConfigError, Panic, PanicRecord
from psaspm.mailbox import protocol as proto
from psaspm.mailbox.protocol import ErrorCode, Kind, ProtocolError, Request
from psaspm.manifest import load_system_manifest
from psaspm.manifest.model import Model, Partition, SystemManifest
from psaspm.system import CodeSpec, System

BUNDLED_AGENT_LIST = Path(__file__).resolve().parent.parent / "data" / "ns_agent_mailbox_list.yaml"
DEFAULT_SLOTS = 16


# ------------------------------------------------------------------ addresses
@dataclass(frozen=True)
class Address:
    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.kind == "unix" else f"tcp:{self.host}:{self.port}"


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def parse_address(text: str, allow_remote: bool = False) -> Address:
    """``unix:PATH`` (also a bare path) or ``tcp:HOST:PORT``; TCP is loopback-only
    unless ``allow_remote``."""
    if text.startswith("tcp:"):
        host, sep, port = text[4:].rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"address {text!r}: expected tcp:HOST:PORT")
        if host not in _LOOPBACK and not allow_remote:
            raise ConfigError(
                f"address {text!r}: {host} is not a loopback address; the mailbox has no "
                "authentication, so listening beyond this machine needs --allow-remote"
            )
        return Address("tcp", host=host, port=int(port))
    path = text.removeprefix("unix:")
    if not path:
        raise ConfigError(f"address {text!r}: expected unix:PATH")
    return Address("unix", path=path)


# ------------------------------------------------------------------ building
@dataclass
class ServedSystem:
    system: System
    mailbox: Mailbox
    agent: str
    irq_source: str | int
    client_id_base: int
    client_id_limit: int


def _mailbox_agents(manifest: SystemManifest) -> list[Partition]:
    return [p for p in manifest.partitions if p.ns_agent and p.model is Model.IPC and p.irqs]


def build_served_system(
    sources: str | Path | list[str | Path],
    backend: str = "ipc",
    isolation: int = 1,
    config: Mapping[str, Any] | None = None,
    paths: Mapping[str, str] | None = None,
    code: Mapping[str, CodeSpec] | None = None,
    slots: int = DEFAULT_SLOTS,
    max_connections: int = 8,
    cflags: Sequence[str] = (),
) -> ServedSystem:
    """Load a system whose mailbox NS agent is psaspm's, bound to a fresh mailbox.

    The agent is the first IPC-model ``ns_agent`` partition with an IRQ in the
    sources (TF-M's ``ns_agent_mailbox.yaml`` is one); without one, psaspm's
    bundled copy of TF-M's manifest is added.
    """
    if backend == "sfn":
        raise ConfigError(
            "psaspm serve needs the IPC backend: the mailbox NS agent is an IPC-model "
            "partition, which TF-M does not allow with the SFN backend"
        )
    if not 1 <= slots <= MAX_SLOTS:
        raise ConfigError(f"--slots must be in 1..{MAX_SLOTS}, not {slots}")
    source_list: list[str | Path] = list(sources) if isinstance(sources, list) else [sources]
    options: dict[str, Any] = {
        "backend": backend,
        "isolation": isolation,
        "config": config,
        "paths": paths,
    }
    manifest = load_system_manifest(source_list, **options)
    agents = _mailbox_agents(manifest)
    if not agents:
        source_list.append(BUNDLED_AGENT_LIST)
        manifest = load_system_manifest(source_list, **options)
        agents = _mailbox_agents(manifest)
    agent = agents[0]
    irq = agent.irqs[0]
    base = irq.client_id_base if irq.client_id_base is not None else agent.client_id_base
    limit = irq.client_id_limit if irq.client_id_limit is not None else agent.client_id_limit
    if base is None or limit is None:
        raise ConfigError(f"{agent.name}: a mailbox NS agent needs a client ID range")
    if agent.entry_point is None:
        raise ConfigError(f"{agent.name}: a mailbox NS agent needs an entry_point")
    mailbox = Mailbox(slots)
    bound = dict(code or {})
    bound[agent.name] = agent_module(mailbox, irq.source, irq.name, base, limit, agent.entry_point)
    system = System(
        manifest, code=bound, max_connections=max_connections, cflags=cflags, config=config
    )
    return ServedSystem(system, mailbox, agent.name, irq.source, base, limit)


# ------------------------------------------------------------------ SPE-side sessions
class _Session:
    """One transport connection, as the SPE thread tracks it."""

    __slots__ = ("alive", "busy", "client_id", "closing", "handles", "link", "ns_id", "queued")

    def __init__(self, link: _Link, ns_id: int, client_id: int) -> None:
        self.link = link
        self.ns_id = ns_id
        self.client_id = client_id
        self.alive = True
        self.busy = 0  # requests in mailbox slots
        self.queued = 0  # requests waiting for a slot
        self.handles: set[int] = set()
        self.closing = False  # its leftover connections are being closed


_OPS = {
    Kind.FRAMEWORK_VERSION: Op.FRAMEWORK_VERSION,
    Kind.VERSION: Op.VERSION,
    Kind.CONNECT: Op.CONNECT,
    Kind.CALL: Op.CALL,
    Kind.CLOSE: Op.CLOSE,
}


class Server:
    """A served system: ``start()``, then ``stop()`` (or ``serve_forever`` from the CLI)."""

    def __init__(
        self,
        served: ServedSystem,
        address: Address,
        restart_on_panic: bool = False,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.served = served
        self.system = served.system
        self.mailbox = served.mailbox
        self.address = address
        self.restart_on_panic = restart_on_panic
        self.shutdown_timeout = shutdown_timeout
        self.slots = len(served.mailbox.slots)
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._links: set[_Link] = set()
        self._spe_thread: threading.Thread | None = None
        self._net_thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._socket_inode: tuple[int, int] | None = None
        self.draining = False
        self.stopped = False
        # SPE-thread state
        self._sessions: dict[_Link, _Session] = {}
        self._ids_in_use: set[int] = set()
        self._waiting: deque[tuple[_Session, int | None, Slot]] = deque()
        self._outbox: list[tuple[_Link, int, bytes, bool]] = []
        self.halted: PanicRecord | None = None
        self.counters = {
            "requests": 0,
            "replies": 0,
            "discarded": 0,
            "protocol_errors": 0,
            "restarts": 0,
            "clients_total": 0,
            "disconnects_cleaned": 0,
        }

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Boot the system and start listening; returns once clients can connect."""
        self._spe_thread = threading.Thread(target=self._spe_main, name="psaspm-spe", daemon=True)
        self._spe_thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        self._ready.clear()
        self._net_thread = threading.Thread(target=self._net_main, name="psaspm-net", daemon=True)
        self._net_thread.start()
        self._ready.wait()
        if self._error is not None:
            self._inbox.put(("stop",))
            raise self._error

    def stop(self, timeout: float | None = None) -> None:
        """Graceful shutdown: stop accepting, finish calls in flight (up to ``timeout``
        seconds), close every connection, remove the socket file."""
        if self.stopped:
            return
        self.stopped = True
        loop = self._loop
        if loop is not None and loop.is_running():
            wait = self.shutdown_timeout if timeout is None else timeout
            future = asyncio.run_coroutine_threadsafe(self._shutdown(wait), loop)
            with contextlib.suppress(Exception):
                future.result(wait + 10)
            loop.call_soon_threadsafe(loop.stop)
        if self._net_thread is not None:
            self._net_thread.join(10)
        self._inbox.put(("stop",))
        if self._spe_thread is not None:
            self._spe_thread.join(10)
        self._remove_socket()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- transport thread
    def _net_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(self._listen())
        except BaseException as exc:
            self._error = exc if isinstance(exc, ConfigError) else ConfigError(str(exc))
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for link in list(self._links):
                link.abort()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _listen(self) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        address = self.address
        if address.kind == "tcp":
            server = await loop.create_server(
                lambda: _Link(self), address.host, address.port, reuse_address=True
            )
            port = server.sockets[0].getsockname()[1]
            self.address = Address("tcp", host=address.host, port=port)
            return server
        sock = self._unix_socket(address.path)
        return await loop.create_unix_server(lambda: _Link(self), sock=sock)

    def _unix_socket(self, path: str) -> socket.socket:
        if os.path.lexists(path):
            mode = os.lstat(path).st_mode
            if not stat.S_ISSOCK(mode):
                raise ConfigError(f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # a stale socket left by a killed server
            else:
                raise ConfigError(f"{path}: another server is listening there")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket file is created 0600
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {path}: {exc.strerror}") from None
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        st = os.stat(path)
        self._socket_inode = (st.st_dev, st.st_ino)
        sock.listen(128)
        sock.setblocking(False)
        return sock

    def _remove_socket(self) -> None:
        if self.address.kind != "unix" or self._socket_inode is None:
            return
        with contextlib.suppress(OSError):
            st = os.stat(self.address.path)
            if (st.st_dev, st.st_ino) == self._socket_inode:
                os.unlink(self.address.path)
        self._socket_inode = None

    async def _shutdown(self, timeout: float) -> None:
        self.draining = True
        if self._server is not None:
            self._server.close()
        self._remove_socket()
        deadline = time.monotonic() + timeout
        while any(link.inflight for link in self._links) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for link in list(self._links):
            link.send(proto.encode_error(0, ErrorCode.SHUTDOWN, "the server is stopping", True))
            link.close()
        await asyncio.sleep(0)

    def post(self, event: tuple[Any, ...]) -> None:
        self._inbox.put(event)

    def _deliver(self, batch: list[tuple[_Link, int, bytes, bool]]) -> None:
        """In the transport thread: write frames the SPE thread produced."""
        for link, seq, data, close in batch:
            link.reply(seq, data)
            if close:
                link.close()

    # ---------------------------------------------------------------- SPE thread
    def _spe_main(self) -> None:
        try:
            self.system.boot()
        except BaseException as exc:
            self._error = exc if isinstance(exc, ConfigError | Panic) else ConfigError(str(exc))
            self._ready.set()
            return
        self._ready.set()
        inbox = self._inbox
        while True:
            events = [inbox.get()]
            while True:
                try:
                    events.append(inbox.get_nowait())
                except queue.Empty:
                    break
            stop = False
            for event in events:
                if event[0] == "stop":
                    stop = True
                else:
                    self._event(event)
            self._pump()
            self._flush()
            if stop:
                return

    def _event(self, event: tuple[Any, ...]) -> None:
        what = event[0]
        link: _Link = event[1]
        if what == "open":
            ns_id = 1
            while ns_id in self._ids_in_use:
                ns_id += 1
            limit, base = self.served.client_id_limit, self.served.client_id_base
            if ns_id > limit - base + 1:
                frame = proto.encode_error(0, ErrorCode.INTERNAL, "no client ID left", True)
                self._outbox.append((link, 0, frame, True))
                return
            self._ids_in_use.add(ns_id)
            self._sessions[link] = _Session(link, -ns_id, limit + 1 - ns_id)
            self.counters["clients_total"] += 1
        elif what == "gone":
            session = self._sessions.get(link)
            if session is None:
                return
            session.alive = False
            if session.queued:
                self._waiting = deque(w for w in self._waiting if w[0] is not session)
                session.queued = 0
            self._reap(session)
        elif what == "req":
            self._request(link, event[2])

    def _request(self, link: _Link, req: Request) -> None:
        session = self._sessions.get(link)
        if session is None or not session.alive:
            return
        seq = req.seq
        kind = req.kind
        if kind is Kind.HELLO:
            welcome = proto.Welcome(session.client_id, self.slots)
            self._out(link, seq, proto.encode_welcome(welcome, seq))
            return
        if kind is Kind.STATS:
            self._out(link, seq, proto.encode_stats_result(seq, self.stats()))
            return
        self.counters["requests"] += 1
        if self.halted is not None:
            self._out(link, seq, self._panic_frame(seq))
            return
        op = _OPS[kind]
        if op is Op.CALL:
            handle, type_, in_vecs, out_caps = req.args
            slot = Slot(
                op, session.ns_id, (handle, type_, in_vecs), [bytearray(n) for n in out_caps]
            )
        else:
            slot = Slot(op, session.ns_id, req.args)
        session.queued += 1
        self._waiting.append((session, seq, slot))

    def _pump(self) -> None:
        """Fill free slots, run the SPE through the mailbox IRQ, collect replies; repeat."""
        mailbox = self.mailbox
        while self._waiting:
            if self.halted is not None:
                while self._waiting:
                    session, seq, _slot = self._waiting.popleft()
                    session.queued -= 1
                    if seq is not None and session.alive:
                        self._out(session.link, seq, self._panic_frame(seq))
                    self._reap(session)
                return
            posted = 0
            while self._waiting and mailbox.free_slot() is not None:
                session, seq, slot = self._waiting.popleft()
                session.queued -= 1
                session.busy += 1
                slot.owner = (session, seq)
                mailbox.post(slot)
                posted += 1
            if not posted:
                return  # every slot is busy with a call the SPE has not answered
            self._run_spe()
            self._collect()

    def _run_spe(self) -> None:
        try:
            self.system.assert_irq(self.served.irq_source)
        except Panic as exc:
            self._panicked(exc.record)
        except Exception as exc:  # a psaspm bug: report it like a halt, keep serving
            self._panicked(PanicRecord("SPM", "serve", f"{type(exc).__name__}: {exc}"))

    def _collect(self) -> None:
        for _index, slot, value in self.mailbox.take_replies():
            session, seq = slot.owner
            session.busy -= 1
            self.counters["replies"] += 1
            if slot.op is Op.CONNECT and value > 0:
                session.handles.add(value)
            elif slot.op is Op.CLOSE:
                session.handles.discard(slot.args[0])
            if seq is None:
                pass  # a close on behalf of a gone client
            elif session.alive:
                outs = [bytes(out) for out in slot.outs] if slot.op is Op.CALL else []
                self._out(session.link, seq, proto.encode_result(seq, value, outs))
            else:
                self.counters["discarded"] += 1
            if not session.alive:
                self._reap(session)

    def _reap(self, session: _Session) -> None:
        """A gone client: close its connections once its calls are done, then forget it."""
        if session.busy or session.queued:
            return
        if session.handles and not session.closing and self.halted is None:
            session.closing = True
            for handle in sorted(session.handles):
                session.queued += 1
                self._waiting.append((session, None, Slot(Op.CLOSE, session.ns_id, (handle,))))
            return
        if self._sessions.get(session.link) is session:
            del self._sessions[session.link]
            self._ids_in_use.discard(-session.ns_id)
            self.counters["disconnects_cleaned"] += 1

    def _panicked(self, record: PanicRecord) -> None:
        self.halted = record
        for slot in self.mailbox.clear():
            session, seq = slot.owner
            session.busy -= 1
            if seq is not None and session.alive:
                self._out(session.link, seq, self._panic_frame(seq))
        for session in list(self._sessions.values()):
            session.handles.clear()  # the connections went down with the SPE
            if session.alive:
                self._out(session.link, 0, self._panic_frame(0))
            else:
                self._reap(session)
        if self.restart_on_panic:
            try:
                self.system.reset()
            except Panic as exc:
                self.halted = exc.record
                return
            self.halted = None
            self.counters["restarts"] += 1

    def _panic_frame(self, seq: int) -> bytes:
        import json

        record = self.halted or self.system.panic
        assert record is not None
        text = json.dumps(
            {"partition": record.partition, "api": record.api, "reason": record.reason}
        )
        return proto.encode_error(seq, ErrorCode.PANIC, text)

    def _out(self, link: _Link, seq: int, data: bytes) -> None:
        self._outbox.append((link, seq, data, False))

    def _flush(self) -> None:
        if not self._outbox:
            return
        batch, self._outbox = self._outbox, []
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
            loop.call_soon_threadsafe(self._deliver, batch)

    def stats(self) -> dict[str, Any]:
        """The STATS frame's object (``docs/mailbox-protocol.md``)."""
        record = self.halted
        sessions = list(self._sessions.values())
        return {
            "state": "panicked" if record is not None else self.system.state,
            "panic": None
            if record is None
            else {"partition": record.partition, "api": record.api, "reason": record.reason},
            "clients": sum(s.alive for s in sessions),
            "sessions": len(sessions),
            "slots": self.slots,
            "slots_in_use": self.mailbox.in_use(),
            "queued": len(self._waiting),
            "open_handles": sum(len(s.handles) for s in sessions),
            "agent": self.served.agent,
            "agent_processed": self.mailbox.processed,
            **self.counters,
            "spm": self.system.stats if record is None else {},
        }


# ------------------------------------------------------------------ one connection
class _Link(asyncio.Protocol):
    """The transport side of one client connection (runs in the transport thread)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.decoder = proto.FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.hello = False
        self.inflight: set[int] = set()
        self.paused = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        server = self.server
        if server.draining:
            transport.write(
                proto.encode_error(0, ErrorCode.SHUTDOWN, "the server is stopping", True)
            )
            transport.close()
            self.closed = True
            return
        server._links.add(self)
        server.post(("open", self))

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        decoder = self.decoder
        for frame in decoder.feed(data):
            self._frame(frame)
            if self.closed:
                return
        if decoder.error is not None:
            self._protocol_error(decoder.error)

    def eof_received(self) -> bool | None:
        try:
            self.decoder.eof()
        except ProtocolError as exc:
            self._protocol_error(exc)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server._links.discard(self)
        self.server.post(("gone", self))

    def _frame(self, frame: proto.Frame) -> None:
        try:
            req = proto.decode_request(frame)
        except ProtocolError as exc:
            if frame.kind == Kind.HELLO and not self.hello:
                exc.fatal = True  # no common version: the conversation cannot start
            self._protocol_error(exc)
            return
        seq = req.seq
        if req.kind is Kind.HELLO:
            if self.hello:
                self._protocol_error(ProtocolError(ErrorCode.OUT_OF_ORDER, "a second HELLO", seq))
                return
            self.hello = True
        elif not self.hello:
            self._protocol_error(
                ProtocolError(ErrorCode.OUT_OF_ORDER, f"{req.kind.name} before HELLO", seq)
            )
            return
        if seq in self.inflight:
            self._protocol_error(
                ProtocolError(ErrorCode.OUT_OF_ORDER, f"request {seq} is already in flight", seq)
            )
            return
        if self.server.draining and req.kind is not Kind.STATS:
            self.send(proto.encode_error(seq, ErrorCode.SHUTDOWN, "the server is stopping"))
            return
        self.inflight.add(seq)
        self.server.post(("req", self, req))
        if len(self.inflight) >= self.server.slots and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()  # backpressure: the client's writes block

    def _protocol_error(self, exc: ProtocolError) -> None:
        self.server.counters["protocol_errors"] += 1
        self.send(proto.encode_error(exc.seq, exc.code, exc.text, exc.fatal))
        if exc.fatal:
            self.close()

    def send(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def reply(self, seq: int, data: bytes) -> None:
        self.send(data)
        if seq:
            self.inflight.discard(seq)
        if self.paused and len(self.inflight) < self.server.slots and not self.closed:
            self.paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def serve_until_signalled(server: Server, ready_message: bool = True) -> int:
    """Run ``server`` until SIGINT or SIGTERM, then shut down gracefully (the CLI)."""
    import signal
    import sys

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        if ready_message:
            print(f"psaspm: serving {server.served.agent} on {server.address}", flush=True)
        while not stop.wait(0.2):
            pass
        print("psaspm: shutting down", file=sys.stderr, flush=True)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


__all__ = [
    "BUNDLED_AGENT_LIST",
    "DEFAULT_SLOTS",
    "Address",
    "ServedSystem",
    "Server",
    "build_served_system",
    "parse_address",
    "serve_until_signalled",
]
