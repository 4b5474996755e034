"""Plain data that crosses the door: vectors, ``psa_msg_t``, a mailbox agent's reply.

A leaf of the kernel (it imports only ``Ptr`` from ``memory``): partition code
and the SPM both use these types.
"""

from __future__ import annotations

import enum
from typing import Any

from psaspm.kernel.memory import Ptr

Buffer = bytes | bytearray | memoryview
InVec = Buffer | Ptr  # a Python buffer, or a raw pointer into the modelled memory
OutVec = bytearray | Ptr


class PsaMsg:
    """``psa_msg_t``: what ``psa_get`` hands to a service (a copy, as in C)."""

    __slots__ = ("client_id", "handle", "in_size", "out_size", "rhandle", "type")

    def __init__(
        self,
        type: int,
        handle: int,
        client_id: int,
        rhandle: Any,
        in_size: tuple[int, int, int, int],
        out_size: tuple[int, int, int, int],
    ) -> None:
        self.type = type
        self.handle = handle
        self.client_id = client_id
        self.rhandle = rhandle
        self.in_size = in_size
        self.out_size = out_size

    def __repr__(self) -> str:
        return (
            f"psa_msg_t(type={self.type}, handle={self.handle:#x}, client_id={self.client_id}, "
            f"rhandle={self.rhandle!r}, in_size={self.in_size}, out_size={self.out_size})"
        )


class RepliedCall:
    """A reply owed to a mailbox NS agent: what ``psa_get(ASYNC_MSG_REPLY)`` hands it
    in ``msg.rhandle`` (TF-M hands the connection; its ``client_data`` and
    ``replied_value`` are what the agent reads)."""

    __slots__ = ("client_data", "client_id", "handle", "replied_value", "type")

    def __init__(
        self, handle: int, type: int, client_id: int, client_data: Any, replied_value: int
    ) -> None:
        self.handle = handle
        self.type = type
        self.client_id = client_id
        self.client_data = client_data
        self.replied_value = replied_value

    def __repr__(self) -> str:
        return (
            f"RepliedCall(handle={self.handle:#x}, type={self.type}, client_id={self.client_id}, "
            f"client_data={self.client_data!r}, replied_value={self.replied_value})"
        )


class ConnStatus(enum.Enum):
    FREE = 0  # in the pool's free list
    IDLE = 1  # allocated; no request outstanding
    ACTIVE = 2  # a message awaits the service's reply


# Per-vector MM-IOVEC state bits (TF-M keeps a nibble per vector: invecs 0-3, outvecs 4-7).
MM_MAPPED = 1
MM_UNMAPPED = 2
MM_ACCESSED = 4
