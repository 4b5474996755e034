"""The mailbox wire codec: round trips, limits, and fuzzing of the frame decoder."""

from __future__ import annotations

import contextlib
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psaspm.mailbox import protocol as p

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
vectors = st.lists(st.binary(max_size=64), max_size=p.MAX_VECTORS)
caps = st.lists(st.integers(0, 4096), max_size=p.MAX_VECTORS)


def decode_all(data: bytes, chunks: list[int] | None = None) -> list[p.Frame]:
    decoder = p.FrameDecoder()
    frames: list[p.Frame] = []
    if not chunks:
        return decoder.feed(data)
    pos = 0
    for size in chunks:
        frames += decoder.feed(data[pos : pos + size])
        pos += size
    frames += decoder.feed(data[pos:])
    return frames


@FUZZ
@given(
    seq=st.integers(1, p.MAX_SEQ),
    handle=st.integers(-(1 << 31), (1 << 31) - 1),
    type_=st.integers(-(1 << 31), (1 << 31) - 1),
    ins=vectors,
    outs=caps,
    chunks=st.lists(st.integers(1, 50), max_size=20),
)
def test_call_round_trip(
    seq: int, handle: int, type_: int, ins: list[bytes], outs: list[int], chunks: list[int]
) -> None:
    """Any valid CALL request decodes back to what was encoded, however the byte stream is split,
    and read whole it takes the server's fast path to the same."""
    data = p.encode_call(seq, handle, type_, ins, outs)
    [frame] = decode_all(data, chunks)
    request = p.decode_request(frame)
    assert request == p.Request(p.Kind.CALL, seq, (handle, type_, tuple(ins), tuple(outs)))
    assert p.single_call(data, len(data)) == (seq, request.args)


@FUZZ
@given(seq=st.integers(1, p.MAX_SEQ), value=st.integers(-(1 << 31), (1 << 31) - 1), outs=vectors)
def test_result_round_trip(seq: int, value: int, outs: list[bytes]) -> None:
    """Any RESULT reply decodes back to its sequence number, value and out-vectors, by the
    general decoder and by the client's fast path alike."""
    data = p.encode_result(seq, value, outs)
    [frame] = p.FrameDecoder().feed(data)
    assert p.decode_reply(frame) == p.Result(seq, value, tuple(outs))
    assert p.single_result(data, len(data)) == p.Result(seq, value, tuple(outs))


def test_other_frames_round_trip() -> None:
    """Every other request and reply kind decodes back to what was encoded, with several frames in
    one stream."""
    data = b"".join(
        [
            p.encode_hello(1),
            p.encode_framework_version(2),
            p.encode_version(3, 0xF000),
            p.encode_connect(4, 0xF000, 7),
            p.encode_close(5, 0x11),
            p.encode_stats(6),
        ]
    )
    requests = [p.decode_request(f) for f in p.FrameDecoder().feed(data)]
    assert [(r.kind, r.seq, r.args) for r in requests] == [
        (p.Kind.HELLO, 1, ()),
        (p.Kind.FRAMEWORK_VERSION, 2, ()),
        (p.Kind.VERSION, 3, (0xF000,)),
        (p.Kind.CONNECT, 4, (0xF000, 7)),
        (p.Kind.CLOSE, 5, (0x11,)),
        (p.Kind.STATS, 6, ()),
    ]
    welcome = p.Welcome(-0x04000000, 8)
    error = p.ErrorFrame(9, p.ErrorCode.PANIC, True, '{"x": 1}')
    replies = [
        p.decode_reply(f)
        for f in p.FrameDecoder().feed(
            p.encode_welcome(welcome)
            + p.encode_stats_result(8, {"a": 1})
            + p.encode_error(9, p.ErrorCode.PANIC, '{"x": 1}', fatal=True)
        )
    ]
    assert replies == [welcome, p.StatsResult(8, {"a": 1}), error]


def test_encoder_refuses_what_the_decoder_would() -> None:
    """The encoder raises ValueError for what the decoder would refuse: too many vectors, oversized
    out-vectors and a handle outside int32."""
    with pytest.raises(ValueError):
        p.encode_call(1, 1, 0, [b""] * 5, [])
    with pytest.raises(ValueError):
        p.encode_call(1, 1, 0, [], [p.MAX_VECTOR + 1])
    with pytest.raises(ValueError):
        p.encode_call(1, 1, 0, [], [p.MAX_VECTOR] * 3)  # over MAX_OUT_TOTAL
    with pytest.raises(ValueError):
        p.encode_close(1, 1 << 31)


def test_length_out_of_range_is_fatal() -> None:
    """A length prefix out of range (OVERSIZED above MAX_FRAME, or shorter than a header) is fatal:
    frames before it are delivered, nothing after it ever is."""
    decoder = p.FrameDecoder()
    # Frames before the bad prefix are still delivered; nothing after it is.
    frames = decoder.feed(
        p.encode_stats(1) + struct.pack("<I", p.MAX_FRAME + 1) + p.encode_stats(2)
    )
    assert [f.seq for f in frames] == [1]
    assert decoder.error is not None and decoder.error.fatal
    assert decoder.error.code == p.ErrorCode.OVERSIZED
    assert decoder.failed and decoder.pending == 0
    assert decoder.feed(p.encode_stats(3)) == []
    decoder = p.FrameDecoder()
    assert decoder.feed(struct.pack("<I", 3) + b"abc") == []
    assert decoder.error is not None and decoder.error.fatal


def test_bad_payloads_are_not_fatal() -> None:
    """A well-framed request with a bad payload raises a non-fatal ProtocolError with the code for
    what is wrong (MALFORMED, UNKNOWN_KIND, UNSUPPORTED_VERSION or LIMIT)."""
    cases = {
        p.frame(p.Kind.VERSION, 1, b"\x00"): p.ErrorCode.MALFORMED,
        p.frame(0x55, 1): p.ErrorCode.UNKNOWN_KIND,
        p.frame(p.Kind.RESULT, 1): p.ErrorCode.UNKNOWN_KIND,
        p.frame(p.Kind.STATS, 0): p.ErrorCode.MALFORMED,
        p.frame(p.Kind.STATS, 1, version=9): p.ErrorCode.UNSUPPORTED_VERSION,
        p.frame(p.Kind.CALL, 1, struct.pack("<iiBBH", 1, 0, 5, 0, 0)): p.ErrorCode.LIMIT,
        p.frame(p.Kind.CALL, 1, struct.pack("<iiBBHI", 1, 0, 1, 0, 0, 10)): p.ErrorCode.MALFORMED,
        p.frame(p.Kind.CALL, 1, struct.pack("<iiBBHI", 1, 0, 0, 1, 0, 1 << 30)): p.ErrorCode.LIMIT,
    }
    for data, code in cases.items():
        [frame] = p.FrameDecoder().feed(data)
        with pytest.raises(p.ProtocolError) as info:
            p.decode_request(frame)
        assert info.value.code == code and not info.value.fatal


def test_truncated_stream() -> None:
    """A stream that ends inside a frame raises a TRUNCATED ProtocolError at end of input."""
    decoder = p.FrameDecoder()
    assert decoder.feed(p.encode_stats(1)[:-1]) == []
    with pytest.raises(p.ProtocolError) as info:
        decoder.eof()
    assert info.value.code == p.ErrorCode.TRUNCATED


def test_a_bare_length_prefix_leaves_the_decoder_busy() -> None:
    """A decoder that has read a frame's length prefix and nothing more is not idle, though it
    buffers no byte: the fast paths must not take the next read for a frame of its own."""
    decoder = p.FrameDecoder()
    assert decoder.idle
    data = p.encode_call(4, 1, 0, [b"abcd"], [4])
    assert decoder.feed(data[:4]) == [] and decoder.pending == 0
    assert not decoder.idle
    [frame] = decoder.feed(data[4:])
    assert p.decode_request(frame).seq == 4 and decoder.idle


def fast_paths_agree(data: bytes) -> None:
    """``data`` as one read: the fast CALL and RESULT parsers accept exactly the reads that the
    general path decodes, without error, to one CALL or one RESULT, and agree with it; also
    when the read lands at the start of a reused buffer with older bytes after it."""
    fast_paths_agree_in(data, data)
    fast_paths_agree_in(data, bytearray(data) + b"\xa5" * 64)
    fast_paths_agree_in(data, memoryview(bytearray(data) + b"\xa5" * 64))


def fast_paths_agree_in(data: bytes, buf: bytes | bytearray | memoryview) -> None:
    decoder = p.FrameDecoder()
    frames = decoder.feed(data)
    whole = len(frames) == 1 and decoder.idle
    request: p.Request | None = None
    reply: p.Reply | None = None
    if whole:
        with contextlib.suppress(p.ProtocolError):
            request = p.decode_request(frames[0])
        with contextlib.suppress(p.ProtocolError):
            reply = p.decode_reply(frames[0])
    call = p.single_call(buf, len(data))
    if request is not None and request.kind is p.Kind.CALL:
        assert call == (request.seq, request.args)
    else:
        assert call is None
    result = p.single_result(buf, len(data))
    if isinstance(reply, p.Result):
        assert result == reply
    else:
        assert result is None


@FUZZ
@given(
    frame=st.one_of(
        st.builds(p.encode_call, st.integers(1, 9), st.integers(0, 99), st.just(0), vectors, caps),
        st.builds(p.encode_result, st.integers(0, 9), st.integers(-200, 200), vectors),
    ),
    where=st.integers(0, 1 << 16),
    xor=st.integers(1, 255),
)
def test_fast_paths_agree_on_one_changed_byte(frame: bytes, where: int, xor: int) -> None:
    """A whole CALL or RESULT with any one byte changed is accepted by its fast parser exactly
    when the general decoder accepts it, with the same fields."""
    data = bytearray(frame)
    data[where % len(data)] ^= xor
    fast_paths_agree(bytes(data))


def fuzz_one(data: bytes) -> None:
    """The property both fuzzers check: only ProtocolError, bounded buffering, and fast paths
    that agree with the general decoder."""
    fast_paths_agree(data)
    decoder = p.FrameDecoder()
    for piece in (data[: len(data) // 2], data[len(data) // 2 :]):
        frames = decoder.feed(piece)
        assert decoder.error is None or decoder.error.fatal
        assert decoder.pending <= p.MAX_FRAME + 4
        for frame in frames:
            for decode in (p.decode_request, p.decode_reply):
                try:
                    decode(frame)
                except p.ProtocolError as exc:
                    assert not exc.fatal


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    """On random bytes the decoder fails only with ProtocolError (fatal only for framing) and
    buffers at most one maximal frame."""
    fuzz_one(data)


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    """Valid frames with bytes flipped, inserted or cut: close to the decoder's paths."""
    parts = draw(
        st.lists(
            st.one_of(
                st.builds(
                    p.encode_call, st.integers(1, 9), st.integers(0, 99), st.just(0), vectors, caps
                ),
                st.builds(
                    p.encode_connect, st.integers(1, 9), st.integers(0, 99), st.integers(0, 9)
                ),
                st.builds(p.encode_result, st.integers(1, 9), st.integers(-200, 200), vectors),
                st.builds(
                    p.encode_error, st.integers(0, 9), st.integers(0, 20), st.text(max_size=20)
                ),
                st.just(p.encode_hello(1)),
            ),
            max_size=4,
        )
    )
    data = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[i : i + draw(st.integers(1, 8))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(mutated_streams())
def test_fuzz_mutated_frames(data: bytes) -> None:
    """On valid frames with bytes flipped, cut or inserted, the decoder fails only with
    ProtocolError (fatal only for framing) and buffers at most one maximal frame."""
    fuzz_one(data)


FUZZER = Path(__file__).with_name("fuzz_decoder.py")


@pytest.mark.timeout(60)
def test_atheris_fuzzer() -> None:
    """libFuzzer (coverage-guided) over the same property, for a bounded time."""
    pytest.importorskip("atheris")
    result = subprocess.run(
        [sys.executable, str(FUZZER), "-max_total_time=4", "-rss_limit_mb=1024"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr[-3000:]
