"""``psaspm serve``: a secure system behind a socket, fed through a mailbox NS agent.

One OS thread does everything: it boots the system (so its greenlets are that
thread's), owns the listening socket and every client socket, and is the
non-secure side of the mailbox.  Its loop waits for sockets to become ready
(``epoll``, or ``poll``), reads and decodes every frame that is there
(``psaspm.mailbox.protocol``), answers protocol errors itself, moves requests
into free mailbox slots, raises the mailbox interrupt line (which runs the SPE
until it is idle again, the agent partition issuing the calls), turns the
replies the agent posted into frames, and writes each client's frames with one
``send``.  Nothing is handed between threads on the way of a call; what is
ready is handled as one batch per loop turn.

Stopping (``stop()``, or SIGINT/SIGTERM through :func:`serve_until_signalled`)
closes the listening socket at once, lets calls in flight finish for up to the
shutdown timeout, then sends every client a fatal SHUTDOWN error.  Partition
code still running at the deadline (a service in an endless loop) is
interrupted: :class:`ServeInterrupted` is raised into it.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import select
import socket
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from psaspm.agents.mailbox import MAX_SLOTS, Mailbox, Op, Slot, agent_module
from psaspm.errors import ConfigError, Panic, PanicRecord, is_psaspm_file
from psaspm.mailbox import protocol as proto
from psaspm.mailbox.address import Address, parse_address
from psaspm.mailbox.protocol import ErrorCode, Kind, ProtocolError
from psaspm.manifest import load_system_manifest
from psaspm.manifest.model import Model, Partition, SystemManifest
from psaspm.system import CodeSpec, System
from psaspm.watchdog import raise_in_thread

BUNDLED_AGENT_LIST = Path(__file__).resolve().parent.parent / "data" / "ns_agent_mailbox_list.yaml"
DEFAULT_SLOTS = 16
RECV_SIZE = 1 << 18
HARD_EXIT_GRACE = 1.0  # seconds after the deadline before an uninterruptible server exits


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
    watchdog: float | None = None,
    c_threads: bool = False,
    sanitize: str | None = None,
) -> ServedSystem:
    """Load a system whose mailbox NS agent is psaspm's, bound to a fresh mailbox.

    The agent is the first IPC-model ``ns_agent`` partition with an IRQ in the
    sources (TF-M's ``ns_agent_mailbox.yaml`` is one); without one, psaspm's
    bundled copy of TF-M's manifest is added.  ``watchdog`` is ``load()``'s: partition
    code running that long without the SPE going idle or blocking is a panic.
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
        manifest,
        code=bound,
        max_connections=max_connections,
        cflags=cflags,
        config=config,
        watchdog=watchdog,
        c_threads=c_threads,
        sanitize=sanitize,
    )
    return ServedSystem(system, mailbox, agent.name, irq.source, base, limit)


class ServeInterrupted(BaseException):
    """Raised into partition code that still runs when the server must stop.

    A ``BaseException`` (as the kernel's own halt) so that partition code's
    ``except Exception`` does not swallow it.
    """


LogFn = Callable[[str], None]


def _stderr(text: str) -> None:
    # Never let a log line stop the server: stderr may be a pipe nobody reads any more.
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def partition_traceback(text: str) -> str:
    """A recorded traceback with psaspm's own frames left out: the partition's files and lines."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line.startswith('  File "'):
            path = line[8:].split('"', 1)[0]
            skipping = is_psaspm_file(path) or "/greenlet/" in path
            if not skipping:
                out.append(line)
        elif line.startswith("    ") and skipping:
            continue
        else:
            skipping = False
            out.append(line)
    return "\n".join(out)


# ------------------------------------------------------------------ one client
_IN = select.POLLIN
_OUT = select.POLLOUT
_GONE = select.POLLHUP | select.POLLERR | getattr(select, "POLLNVAL", 0)


class _Client:
    """One transport connection and its NS client session.

    The session (its client ID, its calls in the mailbox, its open handles)
    outlives the socket: once the client goes away, its calls in flight finish
    (their replies discarded), then each connection it left open is closed.
    """

    __slots__ = (
        "busy",
        "client_id",
        "close_after",
        "closed",
        "closing",
        "decoder",
        "dirty",
        "fd",
        "handles",
        "hello",
        "inflight",
        "mask",
        "ns_id",
        "out",
        "pending",
        "queued",
        "sock",
    )

    def __init__(self, sock: socket.socket, ns_id: int, client_id: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = proto.FrameDecoder()
        self.ns_id = ns_id  # the transport's NS client ID: -1, -2, ...
        self.client_id = client_id  # what services see: the agent's translation
        self.hello = False
        self.inflight: set[int] = set()  # request numbers not answered yet
        self.out: list[bytes] = []  # frames to send at the end of this loop turn
        self.pending = b""  # bytes the socket did not take yet
        self.dirty = False  # in the server's list of clients to flush
        self.close_after = False  # close the socket once ``pending`` is written
        self.closed = False  # the socket is closed: the client is gone
        self.mask = _IN
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
_SHUTDOWN_TEXT = "the server is stopping"


class _Poller:
    """``epoll`` where there is one, else ``poll`` (the same register/modify/unregister
    methods): fd -> events, timeouts in seconds."""

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None
        self._poll: select.poll | None = None
        either: select.epoll | select.poll
        if hasattr(select, "epoll"):
            either = self._epoll = select.epoll()
        else:
            either = self._poll = select.poll()
        self._either = either
        self.register = either.register
        self.modify = either.modify

    def unregister(self, fd: int) -> None:
        with contextlib.suppress(OSError, KeyError, ValueError):
            self._either.unregister(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        if self._epoll is not None:
            return self._epoll.poll(-1 if timeout is None else timeout)
        assert self._poll is not None
        return self._poll.poll(None if timeout is None else timeout * 1000)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


class Server:
    """A served system.  ``start()`` runs it in a thread of its own and ``stop()`` ends
    it; ``run()`` runs it in the calling thread (the CLI) until ``request_stop()``."""

    def __init__(
        self,
        served: ServedSystem,
        address: Address,
        restart_on_panic: bool = False,
        shutdown_timeout: float = 5.0,
        log: LogFn | None = None,
    ) -> None:
        self.served = served
        self.system = served.system
        self.mailbox = served.mailbox
        self.address = address
        self.restart_on_panic = restart_on_panic
        self.shutdown_timeout = shutdown_timeout
        self.log: LogFn = log or _stderr
        self.slots = len(served.mailbox.slots)
        self.draining = False
        self.stopped = False
        self.interrupted: str | None = None  # what was interrupted at the deadline
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
        # the loop's state (only its thread touches it)
        self._poller: _Poller | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._socket_inode: tuple[int, int] | None = None
        self._by_fd: dict[int, _Client] = {}
        self._sessions: dict[_Client, None] = {}  # insertion-ordered set
        self._free_ids: list[int] = []
        self._next_id = 1
        self._waiting: deque[tuple[_Client, int | None, Slot]] = deque()
        self._dirty: list[_Client] = []
        self._recv_buf = bytearray(RECV_SIZE)
        self._recv_view = memoryview(self._recv_buf)
        # shared with other threads and signal handlers
        self._thread: threading.Thread | None = None
        self._loop_ident: int | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._stop_at: float | None = None  # a stop was asked: the deadline for calls in flight
        self._stop_now = False
        self._in_spe = False  # the loop's thread is running the SPE (partition code)
        self._timer: threading.Timer | None = None
        self._hard_exit = False

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Boot the system and listen in a new thread; returns once clients can connect."""
        self._thread = threading.Thread(target=self._thread_main, name="psaspm-serve", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _thread_main(self) -> None:
        try:
            self._open()
        except BaseException as exc:
            self._error = exc if isinstance(exc, ConfigError | Panic) else ConfigError(str(exc))
            self._done.set()
            self._ready.set()
            return
        self._ready.set()
        self._loop()

    def run(self, on_ready: Callable[[], None] | None = None, hard_exit: bool = False) -> None:
        """Boot, listen and serve in the calling thread until a stop is requested.

        With ``hard_exit`` (the CLI), partition code that cannot be interrupted
        (it does not run Python bytecode, or catches everything) ends the process
        with status 1 shortly after the shutdown deadline.
        """
        self._hard_exit = hard_exit
        try:
            self._open()
        except ServeInterrupted:
            self._done.set()
            self.log("psaspm: stopped while booting")
            return
        except BaseException:
            self._done.set()
            raise
        self._ready.set()
        if on_ready is not None:
            on_ready()
        with contextlib.suppress(ServeInterrupted):  # one delivered just as the loop ended
            self._loop()

    def stop(self, timeout: float | None = None) -> None:
        """Graceful shutdown: stop accepting, finish calls in flight (up to ``timeout``
        seconds, default the shutdown timeout), close every connection, remove the
        socket file.  Partition code still running then is interrupted."""
        if self.stopped:
            return
        self.stopped = True
        wait = self.shutdown_timeout if timeout is None else timeout
        self.request_stop(wait)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait + 10)
        self._remove_socket()

    def request_stop(self, timeout: float | None = None, now: bool = False) -> None:
        """Ask the loop to stop; safe from any thread and from a signal handler.

        The first request starts the shutdown (``timeout`` seconds for calls in
        flight); ``now`` skips the wait and interrupts partition code at once.
        """
        if self._stop_at is None:
            wait = self.shutdown_timeout if timeout is None else timeout
            self._stop_at = time.monotonic() + wait
            timer = threading.Timer(wait, self._deadline)
            timer.daemon = True
            self._timer = timer
            timer.start()
            if self._in_spe and threading.get_ident() == self._loop_ident:
                # A signal handler running inside partition code: the loop cannot close
                # the listening socket until the SPE is idle, so refuse new clients now.
                self._close_listener()
        if now:
            self._stop_now = True
            self._interrupt_spe()
        self._wake()

    def _deadline(self) -> None:
        """In the timer thread: the shutdown deadline passed."""
        self._stop_now = True
        self._interrupt_spe()
        self._wake()
        if self._hard_exit and not self._done.wait(HARD_EXIT_GRACE):
            who = self._running_partition()
            self.log(
                f"psaspm: partition code{who} did not stop {self.shutdown_timeout:g} s "
                "after the shutdown began and cannot be interrupted; exiting"
            )
            self._remove_socket()
            os._exit(1)

    def _interrupt_spe(self) -> None:
        """Raise :class:`ServeInterrupted` in partition code, if the loop is running it."""
        if not self._in_spe or self._loop_ident is None:
            return
        if threading.get_ident() == self._loop_ident:
            raise ServeInterrupted  # a signal handler, inside partition code
        # Another thread (the deadline timer, or stop()): an asynchronous exception,
        # delivered at the next bytecode the loop's thread runs.
        raise_in_thread(self._loop_ident, ServeInterrupted)

    def _wake(self) -> None:
        wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):
                wake.send(b"\0")

    def _running_partition(self) -> str:
        with contextlib.suppress(Exception):
            kernel = self.system._kernel
            if kernel is not None:
                return f" of {kernel.spm.current.name}"
        return ""

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- sockets
    def _open(self) -> None:
        self._loop_ident = threading.get_ident()
        self._in_spe = True
        try:
            self.system.boot()
        except (ConfigError, Panic):
            raise
        except Exception as exc:
            raise ConfigError(f"booting the served system failed: {exc}") from exc
        finally:
            self._in_spe = False
        poller = _Poller()
        try:
            listener = self._listen()
        except BaseException:
            poller.close()
            raise
        self._poller = poller
        self._listener = listener
        poller.register(listener.fileno(), _IN)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        poller.register(self._wake_r.fileno(), _IN)

    def _listen(self) -> socket.socket:
        address = self.address
        if address.kind == "tcp":
            family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address.host, address.port))
            except OSError as exc:
                sock.close()
                raise ConfigError(f"cannot listen on {address}: {exc.strerror}") from None
            port = sock.getsockname()[1]
            self.address = Address("tcp", host=address.host, port=port)
        else:
            sock = self._unix_socket(address.path)
        sock.listen(128)
        sock.setblocking(False)
        return sock

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
        return sock

    def _remove_socket(self) -> None:
        if self.address.kind != "unix" or self._socket_inode is None:
            return
        with contextlib.suppress(OSError):
            st = os.stat(self.address.path)
            if (st.st_dev, st.st_ino) == self._socket_inode:
                os.unlink(self.address.path)
        self._socket_inode = None

    def _close_listener(self) -> None:
        listener = self._listener
        if listener is None:
            return
        self._listener = None
        if self._poller is not None:
            self._poller.unregister(listener.fileno())
        listener.close()
        self._remove_socket()

    # ---------------------------------------------------------------- the loop
    def _loop(self) -> None:
        try:
            try:
                self._serve()
            except ServeInterrupted as exc:
                self._was_interrupted(exc)
            self._close_all()
        except ServeInterrupted:  # delivered late, after partition code had returned
            self._close_all()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._done.set()

    def _serve(self) -> None:
        poller = self._poller
        assert poller is not None
        by_fd = self._by_fd
        listener_fd = self._listener.fileno() if self._listener is not None else -1
        assert self._wake_r is not None
        wake_fd = self._wake_r.fileno()
        while True:
            timeout: float | None = None
            if self._stop_at is not None:
                if not self.draining:
                    self.draining = True
                    self._close_listener()
                if self._stop_now or not any(c.inflight for c in by_fd.values()):
                    return
                timeout = self._stop_at - time.monotonic()
                if timeout <= 0:
                    return
            for fd, events in poller.poll(timeout):
                client = by_fd.get(fd)
                if client is not None:
                    if events & _IN:
                        self._read(client)
                    elif events & _GONE:
                        self._lost(client)
                        continue
                    if events & _OUT and not client.closed:
                        self._send(client)
                elif fd == listener_fd:
                    self._accept()
                elif fd == wake_fd:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
            if self._waiting:
                self._pump()
            if self._dirty:
                self._flush()

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                sock, _peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                self.log(f"psaspm: cannot accept a client: {exc.strerror}")
                return
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            limit, base = self.served.client_id_limit, self.served.client_id_base
            # A new client gets the next ID never used yet, so that a service keeping
            # state per client ID never takes a newcomer for a client that has gone;
            # once the range is used up, the smallest ID freed since.
            if self._next_id <= limit - base + 1:
                ns_id = self._next_id
                self._next_id += 1
            elif self._free_ids:
                ns_id = heapq.heappop(self._free_ids)
            else:
                with contextlib.suppress(OSError):
                    sock.send(proto.encode_error(0, ErrorCode.INTERNAL, "no client ID left", True))
                sock.close()
                continue
            client = _Client(sock, -ns_id, limit + 1 - ns_id)
            self._by_fd[client.fd] = client
            self._sessions[client] = None
            self.counters["clients_total"] += 1
            assert self._poller is not None
            self._poller.register(client.fd, _IN)

    def _read(self, client: _Client) -> None:
        try:
            # Into one buffer kept for the server's life: a fresh 256 KiB bytes object per
            # recv() costs an mmap, mremap and munmap (and page faults) on every call.
            size = client.sock.recv_into(self._recv_buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            size = 0
        decoder = client.decoder
        if size and decoder.idle:
            # The usual read: exactly one whole CALL, parsed where it was received.
            call = proto.single_call(self._recv_view, size)  # a view: one copy per vector
            if call is not None:
                self._call(client, *call)
                return
        data = self._recv_view[:size].tobytes()
        if not data:
            try:
                client.decoder.eof()
            except ProtocolError as exc:
                self._protocol_error(client, exc)
                return
            self._lost(client)
            return
        for frame in decoder.feed(data):
            self._frame(client, frame)
            if client.close_after:
                return
        if decoder.error is not None:
            self._protocol_error(client, decoder.error)

    def _frame(self, client: _Client, frame: proto.Frame) -> None:
        try:
            req = proto.decode_request(frame)
        except ProtocolError as exc:
            if frame.kind == Kind.HELLO and not client.hello:
                exc.fatal = True  # no common version: the conversation cannot start
            self._protocol_error(client, exc)
            return
        seq = req.seq
        kind = req.kind
        if kind is Kind.CALL:
            self._call(client, seq, req.args)
            return
        if kind is Kind.HELLO:
            if client.hello:
                self._out_of_order(client, seq, "a second HELLO")
                return
            client.hello = True
            if self.draining:
                self._out(client, 0, proto.encode_error(seq, ErrorCode.SHUTDOWN, _SHUTDOWN_TEXT))
                return
            welcome = proto.Welcome(client.client_id, self.slots)
            self._out(client, 0, proto.encode_welcome(welcome, seq))
            return
        if not client.hello:
            self._out_of_order(client, seq, f"{kind.name} before HELLO")
            return
        self._admit(client, seq, kind, req.args)

    def _call(self, client: _Client, seq: int, args: tuple[Any, ...]) -> None:
        if not client.hello:
            self._out_of_order(client, seq, "CALL before HELLO")
            return
        self._admit(client, seq, Kind.CALL, args)

    def _admit(self, client: _Client, seq: int, kind: Kind, args: tuple[Any, ...]) -> None:
        """A well-formed request after HELLO: answer it here or queue it for a mailbox slot."""
        if seq in client.inflight:
            self._out_of_order(client, seq, f"request {seq} is already in flight")
            return
        if kind is Kind.STATS:
            self._out(client, 0, proto.encode_stats_result(seq, self.stats()))
            return
        if self.draining:
            self._out(client, 0, proto.encode_error(seq, ErrorCode.SHUTDOWN, _SHUTDOWN_TEXT))
            return
        self.counters["requests"] += 1
        client.inflight.add(seq)
        if self.halted is not None:
            self._out(client, seq, self._panic_frame(seq))
            return
        op = _OPS[kind]
        if op is Op.CALL:
            handle, type_, in_vecs, out_caps = args
            slot = Slot(
                op, client.ns_id, (handle, type_, in_vecs), [bytearray(n) for n in out_caps]
            )
        else:
            slot = Slot(op, client.ns_id, args)
        client.queued += 1
        self._waiting.append((client, seq, slot))
        if len(client.inflight) >= self.slots:
            self._set_mask(client)  # backpressure: not read from, the client's writes block

    def _out_of_order(self, client: _Client, seq: int, text: str) -> None:
        self._protocol_error(client, ProtocolError(ErrorCode.OUT_OF_ORDER, text, seq))

    def _protocol_error(self, client: _Client, exc: ProtocolError) -> None:
        self.counters["protocol_errors"] += 1
        self._out(client, 0, proto.encode_error(exc.seq, exc.code, exc.text, exc.fatal))
        if exc.fatal:
            self._close_after_flush(client)

    # ---------------------------------------------------------------- writing
    def _out(self, client: _Client, seq: int, data: bytes) -> None:
        """Queue a frame for ``client``; ``seq`` non-zero: it answers that request."""
        if client.closed:
            return
        client.out.append(data)
        if not client.dirty:
            client.dirty = True
            self._dirty.append(client)
        if seq:
            # Below the slots again, it is read from once its frames are sent (_flush
            # -> _send -> _set_mask, this loop turn).
            client.inflight.discard(seq)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for client in dirty:
            client.dirty = False
            if not client.closed:
                self._send(client)

    def _send(self, client: _Client) -> None:
        out = client.out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            if client.pending:
                data = client.pending + data
        else:
            data = client.pending
        if data:
            try:
                sent = client.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._lost(client)
                return
            client.pending = data[sent:] if sent < len(data) else b""
        if not client.pending and client.close_after:
            self._lost(client)
            return
        self._set_mask(client)

    def _set_mask(self, client: _Client) -> None:
        if client.closed:
            return
        # Not read from while as many requests are outstanding as there are slots.
        paused = len(client.inflight) >= self.slots
        mask = 0 if paused or client.close_after else _IN
        if client.pending:
            mask |= _OUT
        if mask != client.mask:
            client.mask = mask
            assert self._poller is not None
            self._poller.modify(client.fd, mask)

    def _close_after_flush(self, client: _Client) -> None:
        client.close_after = True
        self._set_mask(client)  # read no more from it
        self._gone(client)

    def _lost(self, client: _Client) -> None:
        """The socket is done: close it; the session ends once its calls are done."""
        if client.closed:
            return
        client.closed = True
        client.out.clear()
        client.pending = b""
        if self._poller is not None:
            self._poller.unregister(client.fd)
        self._by_fd.pop(client.fd, None)
        with contextlib.suppress(OSError):
            client.sock.close()
        self._gone(client)

    def _gone(self, client: _Client) -> None:
        """The client went away (or is being cut off): drop what did not reach the SPE."""
        if client.queued:
            self._waiting = deque(w for w in self._waiting if w[0] is not client or w[1] is None)
            client.queued = sum(1 for w in self._waiting if w[0] is client)
        client.inflight.clear()
        self._reap(client)

    def _close_all(self) -> None:
        """The end: a fatal SHUTDOWN to every client, every socket closed."""
        self._close_listener()
        frame = proto.encode_error(0, ErrorCode.SHUTDOWN, _SHUTDOWN_TEXT, True)
        for client in list(self._by_fd.values()):
            data = client.pending + b"".join(client.out) + frame
            with contextlib.suppress(OSError):
                # Without blocking: a client that does not read must not delay the end
                # (it sees the connection close instead of the SHUTDOWN frame).
                client.sock.send(data)
            self._lost(client)
        for wake in (self._wake_r, self._wake_w):
            if wake is not None:
                wake.close()
        self._wake_r = self._wake_w = None
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        self._remove_socket()

    def _was_interrupted(self, exc: ServeInterrupted) -> None:
        tb: TracebackType | None = exc.__traceback__
        where = ""
        while tb is not None:
            code = tb.tb_frame.f_code
            if not is_psaspm_file(code.co_filename):
                where = f" at {code.co_filename}:{tb.tb_lineno} in {code.co_name}"
            tb = tb.tb_next
        self.interrupted = f"partition code{self._running_partition()}{where}"
        self.log(f"psaspm: interrupted {self.interrupted}: still running at the shutdown deadline")

    # ---------------------------------------------------------------- the SPE side
    def _pump(self) -> None:
        """Fill free slots, run the SPE through the mailbox IRQ, collect replies; repeat."""
        mailbox = self.mailbox
        waiting = self._waiting
        while waiting:
            if self.halted is not None:
                while waiting:
                    client, seq, _slot = waiting.popleft()
                    client.queued -= 1
                    if seq is not None:
                        self._out(client, seq, self._panic_frame(seq))
                    self._reap(client)
                return
            posted = 0
            while waiting and mailbox.has_free():
                client, seq, slot = waiting.popleft()
                client.queued -= 1
                client.busy += 1
                slot.owner = (client, seq)
                mailbox.post(slot)
                posted += 1
            if not posted:
                return  # every slot is busy with a call the SPE has not answered
            self._run_spe()
            self._collect()

    def _run_spe(self) -> None:
        self._in_spe = True
        try:
            self.system.assert_irq(self.served.irq_source)
        except Panic as exc:
            self._in_spe = False
            self._panicked(exc.record)
        except Exception as exc:  # a psaspm bug: report it like a halt, keep serving
            self._in_spe = False
            self._panicked(PanicRecord("SPM", "serve", f"{type(exc).__name__}: {exc}"))
        finally:
            self._in_spe = False

    def _collect(self) -> None:
        for _index, slot, value in self.mailbox.take_replies():
            client, seq = slot.owner
            client.busy -= 1
            self.counters["replies"] += 1
            op = slot.op
            if op is Op.CONNECT and value > 0:
                client.handles.add(value)
            elif op is Op.CLOSE:
                client.handles.discard(slot.args[0])
            if seq is None:
                pass  # a close on behalf of a gone client
            elif not client.closed and not client.close_after:
                # The out-vectors as the agent left them (resized to what was written):
                # encode_result copies them into the frame, no copy is needed before.
                outs = slot.outs if op is Op.CALL else ()
                self._out(client, seq, proto.encode_result(seq, value, outs))
            else:
                self.counters["discarded"] += 1
            if client.closed or client.close_after:
                self._reap(client)

    def _reap(self, client: _Client) -> None:
        """A gone client: close its connections once its calls are done, then forget it."""
        if not (client.closed or client.close_after) or client.busy or client.queued:
            return
        if client.handles and not client.closing and self.halted is None:
            client.closing = True
            for handle in sorted(client.handles):
                client.queued += 1
                self._waiting.append((client, None, Slot(Op.CLOSE, client.ns_id, (handle,))))
            return
        if client in self._sessions:
            del self._sessions[client]
            heapq.heappush(self._free_ids, -client.ns_id)
            self.counters["disconnects_cleaned"] += 1

    def _panicked(self, record: PanicRecord) -> None:
        self.halted = record
        self.log(f"psaspm: panic: {record.partition} in {record.api}: {record.reason}")
        if record.traceback:
            self.log(partition_traceback(record.traceback).rstrip())
        for slot in self.mailbox.clear():
            client, seq = slot.owner
            client.busy -= 1
            if seq is not None:
                self._out(client, seq, self._panic_frame(seq))
        for client in list(self._sessions):
            client.handles.clear()  # the connections went down with the SPE
            if not client.closed:
                self._out(client, 0, self._panic_frame(0))
            self._reap(client)
        if not self.restart_on_panic:
            self.log("psaspm: the SPE stays halted: calls get PANIC errors until the server stops")
            return
        self._in_spe = True
        try:
            self.system.reset()
        except Panic as exc:
            self.halted = exc.record
            self.log(
                f"psaspm: restart failed: panic: {exc.record.partition} in {exc.record.api}: "
                f"{exc.record.reason}"
            )
            return
        finally:
            self._in_spe = False
        self.halted = None
        self.counters["restarts"] += 1
        self.log(f"psaspm: restarted the SPE after the panic (restart {self.counters['restarts']})")

    def _panic_frame(self, seq: int) -> bytes:
        record = self.halted or self.system.panic
        assert record is not None
        text = json.dumps(
            {"partition": record.partition, "api": record.api, "reason": record.reason}
        )
        return proto.encode_error(seq, ErrorCode.PANIC, text)

    def stats(self) -> dict[str, Any]:
        """The STATS frame's object (``docs/mailbox-protocol.md``)."""
        record = self.halted
        sessions = list(self._sessions)
        return {
            "state": "panicked" if record is not None else self.system.state,
            "panic": None
            if record is None
            else {"partition": record.partition, "api": record.api, "reason": record.reason},
            "clients": sum(not (s.closed or s.close_after) for s in sessions),
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


def serve_until_signalled(server: Server, ready_message: bool = True) -> int:
    """Run ``server`` in this thread until SIGINT or SIGTERM, then shut down (the CLI).

    The first signal starts a graceful shutdown (calls in flight get up to the
    shutdown timeout); a second one stops at once.  Either way partition code
    still running is interrupted, so the server always ends.
    """
    import signal

    signals = [0]

    def on_signal(signum: int, _frame: object) -> None:
        signals[0] += 1
        # Stop first, log after: a log line that fails must not lose the stop.
        if signals[0] == 1:
            server.request_stop()
            server.log("psaspm: shutting down")
        else:
            server.log("psaspm: stopping now")
            server.request_stop(now=True)  # may raise into partition code: last

    def ready() -> None:
        if ready_message:
            print(f"psaspm: serving {server.served.agent} on {server.address}", flush=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(ready, hard_exit=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stopped = True
    return 0


__all__ = [
    "BUNDLED_AGENT_LIST",
    "DEFAULT_SLOTS",
    "Address",
    "ServeInterrupted",
    "ServedSystem",
    "Server",
    "build_served_system",
    "parse_address",
    "partition_traceback",
    "serve_until_signalled",
]
