"""The PSA API, declared once.

Every view of the API derives from :data:`API`: the SVC numbers, the
interface record partition code calls through (``_generated_api``), each
interface's entries (``_generated_entries``), the tracer's wrapping, the
functions of ``psaspm.psa`` and the C shim.  The checked-in ``_generated_*``
modules and ``psaspm/psa.py`` are written from this table by
``tools/gen_api.py``; a test fails when they are stale.

A leaf module: it imports nothing from psaspm.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    """What entering the SPM for an API involves."""

    # A client call (psa_connect/call/close): TF-M's programmer-error rule applies to
    # what the SPM rejects (a status for a non-secure caller, a panic for a secure one);
    # the caller may block for the reply.
    CLIENT = "client"
    # The mailbox NS agent's asynchronous client calls: the same rule; never blocks.
    AGENT = "agent"
    # A service call that may block, wake a thread or change an interrupt source:
    # leaving the SPM takes pending interrupts and schedules.
    SERVICE = "service"
    # Neither blocks, nor wakes a thread, nor changes an interrupt source: leaving the
    # SPM after it has nothing to take or schedule.
    QUIET = "quiet"


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # the Python annotation, as written in generated code
    default: str | None = None  # a Python expression, as written in generated code


@dataclass(frozen=True)
class Api:
    """One PSA API function."""

    name: str  # the C and Python name: psa_call
    svc: str  # the SVC enum member: CALL
    number: int  # the SVC number
    owner: str  # the kernel object whose method implements it: "spm" or "interrupts"
    method: str  # that method: client_call
    kind: Kind
    params: tuple[Param, ...]
    returns: str  # what psaspm.psa's function returns (Python annotation)
    doc: str  # one sentence for psaspm.psa
    # What the kernel entry returns when it differs from ``returns`` (client calls
    # return their status to the interface even where the C function is void).
    entry_returns: str | None = None
    c: str | None = None  # the C prototype as TF-M declares it; None: no C binding

    @property
    def result(self) -> str:
        """The kernel entry's return annotation."""
        return self.entry_returns or self.returns


def _p(spec: str) -> tuple[Param, ...]:
    """Parameters from ``"name: type = default, ..."`` (types here contain no commas
    outside brackets, which this splitter respects)."""
    params: list[Param] = []
    depth = 0
    piece = ""
    pieces: list[str] = []
    for ch in spec:
        if ch == "," and depth == 0:
            pieces.append(piece)
            piece = ""
            continue
        depth += ch in "[("
        depth -= ch in "])"
        piece += ch
    if piece.strip():
        pieces.append(piece)
    for text in pieces:
        head, _, default = text.partition("=")
        name, _, annotation = head.partition(":")
        params.append(Param(name.strip(), annotation.strip(), default.strip() or None))
    return tuple(params)


_VECS = "in_vecs: Sequence[InVec] = (), out_vecs: Sequence[OutVec] = ()"

# fmt: off
API: tuple[Api, ...] = (
    Api(
        "psa_framework_version", "FRAMEWORK_VERSION", 0x00, "spm", "client_framework_version",
        Kind.QUIET, (), "int", "The FF-M version the SPM implements (0x0101).",
        c="uint32_t psa_framework_version(void)",
    ),
    Api(
        "psa_version", "VERSION", 0x01, "spm", "client_version", Kind.QUIET,
        _p("sid: int"), "int",
        "The version of the service ``sid``, or PSA_VERSION_NONE if absent or not allowed.",
        c="uint32_t psa_version(uint32_t sid)",
    ),
    Api(
        "psa_connect", "CONNECT", 0x02, "spm", "client_connect", Kind.CLIENT,
        _p("sid: int, version: int"), "int",
        "Connect to a connection-based service: a handle, or a negative status.",
        c="psa_handle_t psa_connect(uint32_t sid, uint32_t version)",
    ),
    Api(
        "psa_call", "CALL", 0x03, "spm", "client_call", Kind.CLIENT,
        _p("handle: int, type: int = PSA_IPC_CALL, " + _VECS), "int",
        "Call a service; bytearray out-vectors are resized to the bytes written.",
        c="psa_status_t psa_call(psa_handle_t handle, int32_t type, const psa_invec *in_vec, "
        "size_t in_len, psa_outvec *out_vec, size_t out_len)",
    ),
    Api(
        "psa_close", "CLOSE", 0x04, "spm", "client_close", Kind.CLIENT,
        _p("handle: int"), "None", "Close a connection (the null handle is ignored).",
        entry_returns="int", c="void psa_close(psa_handle_t handle)",
    ),
    Api(
        "psa_wait", "WAIT", 0x05, "spm", "partition_wait", Kind.SERVICE,
        _p("signal_mask: int, timeout: int"), "int",
        "The asserted signals of ``signal_mask``; with PSA_BLOCK, wait until one is.",
        c="psa_signal_t psa_wait(psa_signal_t signal_mask, uint32_t timeout)",
    ),
    Api(
        "psa_get", "GET", 0x06, "spm", "partition_get", Kind.QUIET,
        _p("signal: int"), "PsaMsg", "Take the next message of an asserted service signal.",
        c="psa_status_t psa_get(psa_signal_t signal, psa_msg_t *msg)",
    ),
    Api(
        "psa_set_rhandle", "SET_RHANDLE", 0x07, "spm", "partition_set_rhandle", Kind.QUIET,
        _p("msg_handle: int, rhandle: Any"), "None",
        "Attach a reverse handle to the message's connection.",
        c="void psa_set_rhandle(psa_handle_t msg_handle, void *rhandle)",
    ),
    Api(
        "psa_read", "READ", 0x08, "spm", "partition_read", Kind.QUIET,
        _p("msg_handle: int, invec_idx: int, num_bytes: int"), "bytes",
        "Read up to ``num_bytes`` of an in-vector (fewer at its end).",
        c="size_t psa_read(psa_handle_t msg_handle, uint32_t invec_idx, void *buffer, "
        "size_t num_bytes)",
    ),
    Api(
        "psa_skip", "SKIP", 0x09, "spm", "partition_skip", Kind.QUIET,
        _p("msg_handle: int, invec_idx: int, num_bytes: int"), "int",
        "Skip up to ``num_bytes`` of an in-vector; the number skipped.",
        c="size_t psa_skip(psa_handle_t msg_handle, uint32_t invec_idx, size_t num_bytes)",
    ),
    Api(
        "psa_write", "WRITE", 0x0A, "spm", "partition_write", Kind.QUIET,
        _p("msg_handle: int, outvec_idx: int, data: Buffer"), "None",
        "Append ``data`` to an out-vector.",
        c="void psa_write(psa_handle_t msg_handle, uint32_t outvec_idx, const void *buffer, "
        "size_t num_bytes)",
    ),
    Api(
        "psa_reply", "REPLY", 0x0B, "spm", "partition_reply", Kind.SERVICE,
        _p("msg_handle: int, status: int"), "None", "Reply to a message, ending it.",
        entry_returns="int", c="void psa_reply(psa_handle_t msg_handle, psa_status_t status)",
    ),
    Api(
        "psa_notify", "NOTIFY", 0x0C, "spm", "partition_notify", Kind.SERVICE,
        _p("partition_id: int"), "None", "Assert PSA_DOORBELL on a partition.",
        c="void psa_notify(int32_t partition_id)",
    ),
    Api(
        "psa_clear", "CLEAR", 0x0D, "spm", "partition_clear", Kind.QUIET, (), "None",
        "De-assert the caller's PSA_DOORBELL.", c="void psa_clear(void)",
    ),
    Api(
        "psa_eoi", "EOI", 0x0E, "interrupts", "partition_eoi", Kind.SERVICE,
        _p("irq_signal: int"), "None",
        "End a SLIH interrupt: clear its signal and re-enable its source.",
        c="void psa_eoi(psa_signal_t irq_signal)",
    ),
    Api(
        "psa_panic", "PANIC", 0x0F, "spm", "partition_panic", Kind.SERVICE, (), "NoReturn",
        "Halt the SPE.", c="void psa_panic(void)",
    ),
    Api(
        "psa_rot_lifecycle_state", "LIFECYCLE", 0x10, "spm", "partition_lifecycle", Kind.QUIET,
        (), "int", "The PSA RoT lifecycle state.", c="uint32_t psa_rot_lifecycle_state(void)",
    ),
    Api(
        "psa_irq_enable", "IRQ_ENABLE", 0x11, "interrupts", "partition_irq_enable",
        Kind.SERVICE, _p("irq_signal: int"), "None", "Enable an interrupt source.",
        c="void psa_irq_enable(psa_signal_t irq_signal)",
    ),
    Api(
        "psa_irq_disable", "IRQ_DISABLE", 0x12, "interrupts", "partition_irq_disable",
        Kind.SERVICE, _p("irq_signal: int"), "int", "Disable an interrupt source.",
        c="psa_irq_status_t psa_irq_disable(psa_signal_t irq_signal)",
    ),
    Api(
        "psa_reset_signal", "RESET_SIGNAL", 0x13, "interrupts", "partition_reset_signal",
        Kind.SERVICE, _p("irq_signal: int"), "None", "Clear a FLIH interrupt's signal.",
        c="void psa_reset_signal(psa_signal_t irq_signal)",
    ),
    Api(
        "psa_map_invec", "MAP_INVEC", 0x14, "spm", "partition_map_invec", Kind.QUIET,
        _p("msg_handle: int, invec_idx: int"), "memoryview",
        "Map an in-vector (MM-IOVEC): a read-only view.",
        c="const void *psa_map_invec(psa_handle_t msg_handle, uint32_t invec_idx)",
    ),
    Api(
        "psa_unmap_invec", "UNMAP_INVEC", 0x15, "spm", "partition_unmap_invec", Kind.QUIET,
        _p("msg_handle: int, invec_idx: int"), "None", "Unmap a mapped in-vector.",
        c="void psa_unmap_invec(psa_handle_t msg_handle, uint32_t invec_idx)",
    ),
    Api(
        "psa_map_outvec", "MAP_OUTVEC", 0x16, "spm", "partition_map_outvec", Kind.QUIET,
        _p("msg_handle: int, outvec_idx: int"), "memoryview",
        "Map an out-vector (MM-IOVEC): a writable view.",
        c="void *psa_map_outvec(psa_handle_t msg_handle, uint32_t outvec_idx)",
    ),
    Api(
        "psa_unmap_outvec", "UNMAP_OUTVEC", 0x17, "spm", "partition_unmap_outvec", Kind.QUIET,
        _p("msg_handle: int, outvec_idx: int, length: int"), "None",
        "Unmap a mapped out-vector, ``length`` bytes of it written.",
        c="void psa_unmap_outvec(psa_handle_t msg_handle, uint32_t outvec_idx, size_t len)",
    ),
    # The mailbox NS agent API (TF-M HEAD ``mailbox_agent_api.c``).
    Api(
        "agent_psa_call", "AGENT_CALL", 0x18, "spm", "agent_call", Kind.AGENT,
        _p(
            "handle: int, type: int, in_vecs: Sequence[InVec], out_vecs: Sequence[OutVec], "
            "client_id: int, client_data: Any = None"
        ),
        "int", "A mailbox agent's psa_call for NS client ``client_id``; returns at once.",
    ),
    Api(
        "agent_psa_connect", "AGENT_CONNECT", 0x19, "spm", "agent_connect", Kind.AGENT,
        _p("sid: int, version: int, client_id: int, client_data: Any = None"), "int",
        "A mailbox agent's psa_connect for NS client ``client_id``; returns at once.",
    ),
    Api(
        "agent_psa_close", "AGENT_CLOSE", 0x1A, "spm", "agent_close", Kind.AGENT,
        _p("handle: int, client_id: int, client_data: Any = None"), "int",
        "A mailbox agent's psa_close for NS client ``client_id``; returns at once.",
    ),
)
# fmt: on

BY_NAME: dict[str, Api] = {api.name: api for api in API}
NAMES: tuple[str, ...] = tuple(api.name for api in API)

assert [api.number for api in API] == list(range(len(API))), "SVC numbers are dense"
