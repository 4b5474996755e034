"""The psaspm mailbox wire protocol, version 1 (``docs/mailbox-protocol.md``).

Pure codec: no I/O, no threads, nothing from the kernel.  Both ends use it.

A stream is a sequence of frames::

    u32 length          bytes that follow; HEADER_SIZE <= length <= MAX_FRAME
    u8  version         PROTOCOL_VERSION
    u8  kind            Kind
    u16 reserved        0
    u32 seq             request number chosen by the client (0: unsolicited server frame)
    ... payload         kind-specific

All integers are little-endian.  The length prefix is the only point where the
stream can be resynchronised: a bad length (too small or too large) makes the
rest of the stream meaningless, so :class:`FrameDecoder` reports it as fatal;
any problem inside a well-delimited frame is not fatal.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

PROTOCOL_VERSION = 1
HEADER_SIZE = 8  # version, kind, reserved, seq
MAX_FRAME = 1 << 20  # largest ``length`` accepted (header + payload)
MAX_VECTORS = 4  # per direction on the wire; in + out > 4 is the SPM's PROGRAMMER_ERROR
MAX_VECTOR = 1 << 18  # largest single in-vector or out-vector capacity
MAX_OUT_TOTAL = 1 << 19  # sum of out-vector capacities (so a reply always fits a frame)
MAX_TEXT = 4096  # longest error text
MAX_SEQ = 0xFFFFFFFF

_LEN = struct.Struct("<I")
_HEADER = struct.Struct("<BBHI")
_LEN_HEADER = struct.Struct("<IBBHI")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U32X2 = struct.Struct("<II")
_CALL = struct.Struct("<iiBBH")
_RESULT = struct.Struct("<iBBH")
_WELCOME = struct.Struct("<iHHIII")
_ERROR = struct.Struct("<HBB")


class Kind(enum.IntEnum):
    # client -> server
    HELLO = 0x01
    FRAMEWORK_VERSION = 0x02
    VERSION = 0x03
    CONNECT = 0x04
    CALL = 0x05
    CLOSE = 0x06
    STATS = 0x07
    # server -> client
    WELCOME = 0x81
    RESULT = 0x82
    STATS_RESULT = 0x83
    ERROR = 0xEE


CLIENT_KINDS = frozenset(
    {
        Kind.HELLO,
        Kind.FRAMEWORK_VERSION,
        Kind.VERSION,
        Kind.CONNECT,
        Kind.CALL,
        Kind.CLOSE,
        Kind.STATS,
    }
)


class ErrorCode(enum.IntEnum):
    MALFORMED = 1  # a frame whose payload does not parse
    TRUNCATED = 2  # the stream ended inside a frame
    OVERSIZED = 3  # a length prefix out of range: the stream cannot be resynchronised
    OUT_OF_ORDER = 4  # a frame the conversation does not allow now
    UNSUPPORTED_VERSION = 5  # a header version this end does not speak
    UNKNOWN_KIND = 6  # a kind number nobody defined (or one for the other direction)
    LIMIT = 7  # vector count or size over the protocol's limits
    PANIC = 8  # the SPE halted; the text is JSON {"partition", "api", "reason"}
    SHUTDOWN = 9  # the server is stopping
    INTERNAL = 10  # the server failed to handle the request


class ProtocolError(Exception):
    """A frame that breaks the protocol; ``fatal`` when the stream cannot go on."""

    def __init__(self, code: ErrorCode, text: str, seq: int = 0, fatal: bool = False) -> None:
        super().__init__(f"{code.name}: {text}")
        self.code = code
        self.text = text
        self.seq = seq
        self.fatal = fatal


class Frame(NamedTuple):
    """A well-delimited frame: header fields and the raw payload."""

    version: int
    kind: int
    seq: int
    payload: bytes


class Request(NamedTuple):
    """A decoded client request. ``args`` by kind:

    HELLO, FRAMEWORK_VERSION, STATS: ``()``; VERSION: ``(sid,)``;
    CONNECT: ``(sid, version)``; CLOSE: ``(handle,)``;
    CALL: ``(handle, type, in_vecs: tuple[bytes, ...], out_caps: tuple[int, ...])``.
    """

    kind: Kind
    seq: int
    args: tuple[Any, ...] = ()
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Welcome:
    client_id: int
    slots: int
    max_iovec: int = MAX_VECTORS
    max_frame: int = MAX_FRAME
    max_vector: int = MAX_VECTOR
    max_out_total: int = MAX_OUT_TOTAL


class Result(NamedTuple):
    """A RESULT reply: the request's number, its value and the out-vectors' bytes."""

    seq: int
    value: int
    outs: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class StatsResult:
    seq: int
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorFrame:
    seq: int
    code: int
    fatal: bool
    text: str


Reply = Welcome | Result | StatsResult | ErrorFrame


# ------------------------------------------------------------------ encoding
def frame(kind: int, seq: int, payload: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    """One whole frame, length prefix included."""
    body_len = HEADER_SIZE + len(payload)
    if body_len > MAX_FRAME:
        raise ValueError(f"a frame of {body_len} bytes exceeds MAX_FRAME ({MAX_FRAME})")
    return _LEN.pack(body_len) + _HEADER.pack(version, kind, 0, seq) + payload


def encode_hello(seq: int = 1) -> bytes:
    return frame(Kind.HELLO, seq)


def encode_framework_version(seq: int) -> bytes:
    return frame(Kind.FRAMEWORK_VERSION, seq)


def encode_version(seq: int, sid: int) -> bytes:
    return frame(Kind.VERSION, seq, _U32.pack(sid & 0xFFFFFFFF))


def encode_connect(seq: int, sid: int, version: int) -> bytes:
    return frame(Kind.CONNECT, seq, _U32X2.pack(sid & 0xFFFFFFFF, version & 0xFFFFFFFF))


def encode_close(seq: int, handle: int) -> bytes:
    return frame(Kind.CLOSE, seq, _I32.pack(_clamp_i32(handle)))


def encode_stats(seq: int) -> bytes:
    return frame(Kind.STATS, seq)


def encode_call(
    seq: int, handle: int, type: int, in_vecs: Sequence[bytes], out_caps: Sequence[int]
) -> bytes:
    """A CALL frame; raises ValueError if the vectors break the protocol's limits."""
    n_in = len(in_vecs)
    n_out = len(out_caps)
    in_lens = [len(v) for v in in_vecs]
    total_in = sum(in_lens)
    if (
        n_in > MAX_VECTORS
        or n_out > MAX_VECTORS
        or total_in > MAX_VECTOR
        or (n_out and (max(out_caps) > MAX_VECTOR or min(out_caps) < 0))
        or (n_out > 1 and sum(out_caps) > MAX_OUT_TOTAL)
    ):
        check_call_limits(in_lens, list(out_caps))  # raises if one is really out of range
    head = _call_struct(n_in, n_out)
    length = head.size - 4 + total_in  # within MAX_FRAME: total_in is within MAX_VECTOR
    try:
        packed = head.pack(
            length,
            PROTOCOL_VERSION,
            _CALL_KIND,
            0,
            seq,
            handle,
            type,
            n_in,
            n_out,
            0,
            *in_lens,
            *out_caps,
        )
    except struct.error:
        _clamp_i32(handle)
        _clamp_i32(type)
        raise
    if n_in == 1:
        return packed + in_vecs[0]
    return b"".join((packed, *in_vecs))


_CALL_KIND, _RESULT_KIND = int(Kind.CALL), int(Kind.RESULT)  # plain ints: fast to compare
_CALL_STRUCTS: dict[tuple[int, int], struct.Struct] = {}
_RESULT_STRUCTS: list[struct.Struct] = [
    struct.Struct("<IBBHIiBBH" + "I" * n) for n in range(MAX_VECTORS + 1)
]


def _call_struct(n_in: int, n_out: int) -> struct.Struct:
    """Length, header, CALL head and vector sizes of a CALL with that many vectors: one pack."""
    key = (n_in, n_out)
    found = _CALL_STRUCTS.get(key)
    if found is None:
        found = _CALL_STRUCTS[key] = struct.Struct("<IBBHIiiBBH" + "I" * (n_in + n_out))
    return found


def check_call_limits(in_lens: Sequence[int], out_caps: Sequence[int]) -> None:
    if len(in_lens) > MAX_VECTORS or len(out_caps) > MAX_VECTORS:
        raise ValueError(f"at most {MAX_VECTORS} in-vectors and {MAX_VECTORS} out-vectors")
    for n in (*in_lens, *out_caps):
        if n < 0 or n > MAX_VECTOR:
            raise ValueError(f"a vector of {n} bytes exceeds MAX_VECTOR ({MAX_VECTOR})")
    if sum(out_caps) > MAX_OUT_TOTAL:
        raise ValueError(f"out-vector capacities exceed MAX_OUT_TOTAL ({MAX_OUT_TOTAL})")
    if HEADER_SIZE + _CALL.size + 4 * (len(in_lens) + len(out_caps)) + sum(in_lens) > MAX_FRAME:
        raise ValueError(f"in-vectors do not fit in one frame (MAX_FRAME {MAX_FRAME})")


def encode_welcome(w: Welcome, seq: int = 0) -> bytes:
    return frame(
        Kind.WELCOME,
        seq,
        _WELCOME.pack(
            w.client_id, w.slots, w.max_iovec, w.max_frame, w.max_vector, w.max_out_total
        ),
    )


def encode_result(seq: int, value: int, outs: Sequence[bytes | bytearray] = ()) -> bytes:
    n = len(outs)
    if n > MAX_VECTORS:
        raise ValueError(f"at most {MAX_VECTORS} out-vectors")
    lens = [len(o) for o in outs]
    head = _RESULT_STRUCTS[n]
    length = head.size - 4 + sum(lens)
    if length > MAX_FRAME:
        raise ValueError(f"a frame of {length} bytes exceeds MAX_FRAME ({MAX_FRAME})")
    packed = head.pack(
        length, PROTOCOL_VERSION, _RESULT_KIND, 0, seq, _clamp_i32(value), n, 0, 0, *lens
    )
    if n == 1:
        return packed + outs[0]
    return b"".join((packed, *outs))


def encode_stats_result(seq: int, stats: dict[str, Any]) -> bytes:
    return frame(Kind.STATS_RESULT, seq, json.dumps(stats, sort_keys=True).encode())


def encode_error(seq: int, code: int, text: str, fatal: bool = False) -> bytes:
    data = text.encode("utf-8", "replace")[:MAX_TEXT]
    return frame(Kind.ERROR, seq, _ERROR.pack(code, 1 if fatal else 0, 0) + data)


def _clamp_i32(value: int) -> int:
    if not -(1 << 31) <= value < (1 << 31):
        raise ValueError(f"{value} does not fit in a 32-bit signed integer")
    return value


# ------------------------------------------------------------------ decoding
class FrameDecoder:
    """Splits a byte stream into frames.

    ``feed`` returns the complete frames so far and never raises.  A length
    prefix out of range sets ``error`` (a fatal :class:`ProtocolError`): the
    frames before it are still returned, and nothing after it ever is (the
    stream cannot be resynchronised).  The buffer never holds more than one
    frame plus its prefix.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need = 0  # body length of the frame being read, 0 while reading a prefix
        self.error: ProtocolError | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def pending(self) -> int:
        """Bytes received that do not form a whole frame yet."""
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """At a frame boundary, holding nothing, not failed: the next read starts a frame."""
        return not self._need and not self._buf and self.error is None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        if self.error is not None:
            return []
        if not self._need and not self._buf and len(data) >= 12 and data.__class__ is bytes:
            # The common case: exactly one whole frame, read at a frame boundary.
            length, version, kind, _reserved, seq = _LEN_HEADER.unpack_from(data)
            if len(data) == length + 4 and HEADER_SIZE <= length <= self.max_frame:
                return [Frame(version, kind, seq, data[12:])]
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        while True:
            if self._need == 0:
                if end - pos < 4:
                    break
                (length,) = _LEN.unpack_from(buf, pos)
                if length < HEADER_SIZE or length > self.max_frame:
                    self.error = ProtocolError(
                        ErrorCode.OVERSIZED if length > self.max_frame else ErrorCode.MALFORMED,
                        f"frame length {length} is outside {HEADER_SIZE}..{self.max_frame}",
                        fatal=True,
                    )
                    buf.clear()
                    return frames
                pos += 4
                self._need = length
            if end - pos < self._need:
                break
            version, kind, _reserved, seq = _HEADER.unpack_from(buf, pos)
            payload = bytes(buf[pos + HEADER_SIZE : pos + self._need])
            pos += self._need
            self._need = 0
            frames.append(Frame(version, kind, seq, payload))
        del buf[:pos]
        return frames

    def eof(self) -> None:
        """The stream ended: raise TRUNCATED if it ended inside a frame."""
        if self.error is None and (self._buf or self._need):
            raise ProtocolError(
                ErrorCode.TRUNCATED,
                f"the stream ended inside a frame ({len(self._buf)} bytes pending)",
                fatal=True,
            )


def decode_request(f: Frame) -> Request:
    """Parse a client frame; a :class:`ProtocolError` (not fatal) names what is wrong."""
    seq = f.seq
    if f.kind == _CALL_KIND and f.version == PROTOCOL_VERSION and seq:
        return _decode_call(f.payload, seq)
    if f.version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {f.version}; this server speaks {PROTOCOL_VERSION}",
            seq,
        )
    try:
        kind = Kind(f.kind)
    except ValueError:
        raise ProtocolError(
            ErrorCode.UNKNOWN_KIND, f"unknown frame kind {f.kind:#x}", seq
        ) from None
    if kind not in CLIENT_KINDS:
        raise ProtocolError(ErrorCode.UNKNOWN_KIND, f"{kind.name} is a server frame", seq)
    if seq == 0:
        raise ProtocolError(ErrorCode.MALFORMED, "request number 0 is reserved", seq)
    p = f.payload
    if kind in (Kind.HELLO, Kind.FRAMEWORK_VERSION, Kind.STATS):
        _exact(p, 0, kind, seq)
        return Request(kind, seq)
    if kind is Kind.VERSION:
        _exact(p, 4, kind, seq)
        return Request(kind, seq, _U32.unpack(p))
    if kind is Kind.CONNECT:
        _exact(p, 8, kind, seq)
        return Request(kind, seq, _U32X2.unpack(p))
    if kind is Kind.CLOSE:
        _exact(p, 4, kind, seq)
        return Request(kind, seq, _I32.unpack(p))
    return _decode_call(p, seq)


def _exact(p: bytes, size: int, kind: Kind, seq: int) -> None:
    if len(p) != size:
        raise ProtocolError(
            ErrorCode.MALFORMED, f"{kind.name} needs {size} payload bytes, not {len(p)}", seq
        )


def _decode_call(p: bytes, seq: int) -> Request:
    if len(p) < _CALL.size:
        raise ProtocolError(ErrorCode.MALFORMED, f"CALL payload of {len(p)} bytes", seq)
    handle, type_, n_in, n_out, reserved = _CALL.unpack_from(p)
    if reserved:
        raise ProtocolError(ErrorCode.MALFORMED, "CALL reserved field is not 0", seq)
    if n_in > MAX_VECTORS or n_out > MAX_VECTORS:
        raise ProtocolError(
            ErrorCode.LIMIT, f"{n_in} in-vectors and {n_out} out-vectors (max {MAX_VECTORS})", seq
        )
    pos = _CALL.size
    n = n_in + n_out
    if len(p) < pos + 4 * n:
        raise ProtocolError(ErrorCode.MALFORMED, "CALL vector sizes are truncated", seq)
    sizes = _SIZES[n].unpack_from(p, pos)
    pos += 4 * n
    in_lens, out_caps = sizes[:n_in], sizes[n_in:]
    if max(sizes, default=0) > MAX_VECTOR:
        raise ProtocolError(ErrorCode.LIMIT, f"a vector exceeds MAX_VECTOR ({MAX_VECTOR})", seq)
    if n_out and sum(out_caps) > MAX_OUT_TOTAL:
        raise ProtocolError(
            ErrorCode.LIMIT, f"out-vector capacities exceed MAX_OUT_TOTAL ({MAX_OUT_TOTAL})", seq
        )
    if len(p) != pos + sum(in_lens):
        raise ProtocolError(
            ErrorCode.MALFORMED,
            f"CALL carries {len(p) - pos} in-vector bytes, its sizes say {sum(in_lens)}",
            seq,
        )
    if n_in == 1:
        ins: tuple[bytes, ...] = (p[pos:],)
    else:
        parts = []
        for n_bytes in in_lens:
            parts.append(p[pos : pos + n_bytes])
            pos += n_bytes
        ins = tuple(parts)
    return Request(_CALL_KIND_ENUM, seq, (handle, type_, ins, out_caps))


_CALL_KIND_ENUM = Kind.CALL
_CALL_FRAME_HEAD = struct.Struct("<IBBHIiiBBH")  # length, header, CALL head: 24 bytes
_RESULT_FRAME_HEAD = struct.Struct("<IBBHIiBBH")  # length, header, RESULT head: 20 bytes


def single_call(
    buf: bytes | bytearray | memoryview, size: int
) -> tuple[int, tuple[int, int, tuple[bytes, ...], tuple[int, ...]]] | None:
    """``buf[:size]`` when it is exactly one well-formed CALL of this protocol version (a
    server's usual read): its request number and :class:`Request` ``args``; otherwise
    None, and the general path (:class:`FrameDecoder`, :func:`decode_request`) parses the
    bytes and names what is wrong with them.  Saves the server a copy of the read and the
    Frame and Request objects on every call."""
    if size < 24:
        return None
    length, version, kind, _r, seq, handle, type_, n_in, n_out, reserved = (
        _CALL_FRAME_HEAD.unpack_from(buf)
    )
    if (
        length + 4 != size
        or kind != _CALL_KIND
        or version != PROTOCOL_VERSION
        or not seq
        or reserved
        or n_in > MAX_VECTORS
        or n_out > MAX_VECTORS
        or length > MAX_FRAME
    ):
        return None
    n = n_in + n_out
    pos = 24 + 4 * n
    if size < pos:
        return None
    sizes = _SIZES[n].unpack_from(buf, 24)
    in_lens = sizes[:n_in]
    out_caps = sizes[n_in:]
    if (
        (n and max(sizes) > MAX_VECTOR)
        or (n_out and sum(out_caps) > MAX_OUT_TOTAL)
        or size != pos + sum(in_lens)
    ):
        return None
    if n_in == 1:
        ins: tuple[bytes, ...] = (bytes(buf[pos:size]),)
    else:
        parts = []
        for n_bytes in in_lens:
            parts.append(bytes(buf[pos : pos + n_bytes]))
            pos += n_bytes
        ins = tuple(parts)
    return seq, (handle, type_, ins, out_caps)


def single_result(buf: bytes | bytearray | memoryview, size: int) -> Result | None:
    """``buf[:size]`` when it is exactly one well-formed RESULT of this protocol version (a
    client's usual read); otherwise None, for the general path (:class:`FrameDecoder`,
    :func:`decode_reply`) to parse and judge."""
    if size < 20:
        return None
    length, version, kind, _r, seq, value, n_out, _r1, _r2 = _RESULT_FRAME_HEAD.unpack_from(buf)
    if length + 4 != size or kind != _RESULT_KIND or version != PROTOCOL_VERSION:
        return None
    if n_out > MAX_VECTORS or length > MAX_FRAME:
        return None
    pos = 20 + 4 * n_out
    if size < pos:
        return None
    lens = _SIZES[n_out].unpack_from(buf, 20)
    if size != pos + sum(lens):
        return None
    if n_out == 1:
        return Result(seq, value, (bytes(buf[pos:size]),))
    outs = []
    for n_bytes in lens:
        outs.append(bytes(buf[pos : pos + n_bytes]))
        pos += n_bytes
    return Result(seq, value, tuple(outs))


_SIZES = [struct.Struct("<" + "I" * n) for n in range(2 * MAX_VECTORS + 1)]


def decode_reply(f: Frame) -> Reply:
    """Parse a server frame (client side); raises :class:`ProtocolError` if malformed."""
    seq = f.seq
    p = f.payload
    if f.version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION, f"server speaks protocol version {f.version}", seq
        )
    if f.kind == Kind.WELCOME:
        if len(p) != _WELCOME.size:
            raise ProtocolError(ErrorCode.MALFORMED, "WELCOME of the wrong size", seq)
        return Welcome(*_WELCOME.unpack(p))
    if f.kind == Kind.RESULT:
        if len(p) < _RESULT.size:
            raise ProtocolError(ErrorCode.MALFORMED, "RESULT is truncated", seq)
        value, n_out, _r1, _r2 = _RESULT.unpack_from(p)
        pos = _RESULT.size
        if n_out > MAX_VECTORS or len(p) < pos + 4 * n_out:
            raise ProtocolError(ErrorCode.MALFORMED, "RESULT vector sizes are wrong", seq)
        lens = _SIZES[n_out].unpack_from(p, pos)
        pos += 4 * n_out
        if len(p) != pos + sum(lens):
            raise ProtocolError(ErrorCode.MALFORMED, "RESULT data does not match its sizes", seq)
        outs = []
        for n in lens:
            outs.append(p[pos : pos + n])
            pos += n
        return Result(seq, value, tuple(outs))
    if f.kind == Kind.STATS_RESULT:
        try:
            stats = json.loads(p.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProtocolError(ErrorCode.MALFORMED, f"STATS_RESULT: {exc}", seq) from None
        if not isinstance(stats, dict):
            raise ProtocolError(ErrorCode.MALFORMED, "STATS_RESULT is not an object", seq)
        return StatsResult(seq, stats)
    if f.kind == Kind.ERROR:
        if len(p) < _ERROR.size:
            raise ProtocolError(ErrorCode.MALFORMED, "ERROR is truncated", seq)
        code, fatal, _r = _ERROR.unpack_from(p)
        return ErrorFrame(seq, code, bool(fatal), p[_ERROR.size :].decode("utf-8", "replace"))
    raise ProtocolError(ErrorCode.UNKNOWN_KIND, f"unknown server frame kind {f.kind:#x}", seq)
