"""Partition code for a mailbox NS agent (TF-M HEAD ``ns_agent_mailbox.c``), and the
mailbox it serves.

The :class:`Mailbox` is the memory shared between the non-secure side (the
``psaspm serve`` transport, running in the SPE's thread between SPE runs) and
the agent: a fixed number of request slots, a pending bitmap, and the replies.
The NS side fills free slots, marks them pending and raises the mailbox
interrupt line; the agent, woken by its SLIH signal, clears the line,
``psa_eoi``s, and issues each pending slot's call through the agent API with
the slot index as ``client_data``.  Calls do not block it: replies arrive as
ASYNC_MSG_REPLY, collected with ``psa_get``, and are posted back to the slot.

:func:`agent_module` builds the agent's code as a module bound to one mailbox:
``psaspm.load(..., code={"TFM_NS_MAILBOX_AGENT": agent_module(mailbox, ...)})``.
Its entry point is the manifest's ``ns_agent_mailbox_entry``.
"""

from __future__ import annotations

import enum
import types
from dataclasses import dataclass, field
from typing import Any

from psaspm import hal
from psaspm.psa import (
    ASYNC_MSG_REPLY,
    PSA_BLOCK,
    PSA_ERROR_INVALID_ARGUMENT,
    PSA_SUCCESS,
    PSA_WAIT_ANY,
    agent_psa_call,
    agent_psa_close,
    agent_psa_connect,
    psa_eoi,
    psa_framework_version,
    psa_get,
    psa_irq_enable,
    psa_panic,
    psa_reply,
    psa_version,
    psa_wait,
)

MAX_SLOTS = 32  # TF-M's pending/replied bitmaps are 32-bit words


class Op(enum.IntEnum):
    FRAMEWORK_VERSION = 1
    VERSION = 2
    CONNECT = 3
    CALL = 4
    CLOSE = 5


@dataclass(slots=True)
class Slot:
    """One request in the mailbox: what the NS side wrote, and the reply the agent posts."""

    op: Op
    ns_client_id: int  # the NS side's own client ID (negative), translated by the agent
    args: tuple[Any, ...] = ()  # VERSION (sid,); CONNECT (sid, version); CLOSE (handle,);
    # CALL (handle, type, in_vecs)
    outs: list[bytearray] = field(default_factory=list)  # CALL out-vectors: resized at reply
    owner: Any = None  # the NS side's bookkeeping (the agent never looks at it)


class Mailbox:
    """The shared request slots between the NS side and the mailbox agent."""

    def __init__(self, n_slots: int) -> None:
        if not 1 <= n_slots <= MAX_SLOTS:
            raise ValueError(f"a mailbox has 1..{MAX_SLOTS} slots, not {n_slots}")
        self.slots: list[Slot | None] = [None] * n_slots
        self.full = (1 << n_slots) - 1
        self.used = 0  # bit i: slot i holds a request (pending, taken or replied)
        self.pending = 0  # bit i: slot i holds a request the agent has not taken
        self.replied: list[tuple[int, int]] = []  # (slot, value), in reply order
        self.processed = 0  # requests the agent has taken, ever

    # ---- NS side
    def has_free(self) -> bool:
        return self.used != self.full

    def post(self, slot: Slot) -> int:
        """Put ``slot`` in the lowest free slot and mark it pending; its index."""
        free = ~self.used & self.full
        if not free:
            raise RuntimeError("no free mailbox slot")
        bit = free & -free
        index = bit.bit_length() - 1
        self.slots[index] = slot
        self.used |= bit
        self.pending |= bit
        return index

    def in_use(self) -> int:
        return self.used.bit_count()

    def take_replies(self) -> list[tuple[int, Slot, int]]:
        """Replied slots (index, slot, value), freed for new requests."""
        done = []
        slots = self.slots
        for index, value in self.replied:
            slot = slots[index]
            assert slot is not None
            slots[index] = None
            self.used &= ~(1 << index)
            done.append((index, slot, value))
        self.replied.clear()
        return done

    def clear(self) -> list[Slot]:
        """Drop every request (the SPE was reset): the slots that were in use."""
        lost = [slot for slot in self.slots if slot is not None]
        self.slots = [None] * len(self.slots)
        self.used = 0
        self.pending = 0
        self.replied.clear()
        return lost

    # ---- agent side
    def take_pending(self) -> list[int]:
        """Pending slot indexes, in index order (as TF-M processes them)."""
        bits = self.pending
        self.pending = 0
        taken = []
        while bits:
            low = bits & -bits
            taken.append(low.bit_length() - 1)
            bits ^= low
        return taken

    def reply(self, index: int, value: int) -> None:
        self.replied.append((index, value))


def translate_client_id(ns_client_id: int, base: int, limit: int) -> int | None:
    """TF-M's ``tfm_multi_core_hal_client_id_translate``: an NS ID into the agent's range."""
    if ns_client_id >= 0 or ns_client_id < -(limit - base) - 1:
        return None
    translated = limit + 1 + ns_client_id
    return translated if translated < 0 else None


def agent_module(
    mailbox: Mailbox,
    irq_source: str | int,
    irq_signal: str,
    client_id_base: int,
    client_id_limit: int,
    entry_point: str = "ns_agent_mailbox_entry",
    new_msg_signal: str | None = "NS_AGENT_MBOX_PROCESS_NEW_MSG_SIGNAL",
) -> types.ModuleType:
    """The agent's partition code, bound to ``mailbox``.

    ``irq_signal`` names the mailbox interrupt's signal constant (FF-M 1.1:
    ``<irq name>_SIGNAL``); ``client_id_base``/``client_id_limit`` are that
    IRQ's (or the partition's) client-ID range from the manifest.
    ``new_msg_signal`` is the stateless service hybrid platforms use to make the
    agent process messages; it replies with the number processed.
    """

    def handle_requests() -> int:
        taken = mailbox.take_pending()
        for index in taken:
            slot = mailbox.slots[index]
            assert slot is not None
            _dispatch(mailbox, index, slot, client_id_base, client_id_limit)
        mailbox.processed += len(taken)
        return len(taken)

    def entry() -> None:
        constants = hal.constants()
        irq = constants[irq_signal]
        new_msg = constants.get(new_msg_signal, 0) if new_msg_signal else 0
        psa_irq_enable(irq)
        while True:
            signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
            if signals & irq:
                hal.deassert_irq(irq_source)  # the mailbox driver clears its interrupt
                psa_eoi(irq)
                handle_requests()
                signals &= ~irq
            if signals & ASYNC_MSG_REPLY:
                # One reply per turn, as TF-M's agent does: the signal stays asserted
                # while more replies wait, so the next psa_wait returns at once.
                done = psa_get(ASYNC_MSG_REPLY).rhandle
                mailbox.reply(done.client_data, done.replied_value)
                signals &= ~ASYNC_MSG_REPLY
            if new_msg and signals & new_msg:
                msg = psa_get(new_msg)
                psa_reply(msg.handle, handle_requests())
                signals &= ~new_msg
            if signals:
                psa_panic()  # a signal this agent does not know

    module = types.ModuleType("psaspm_mailbox_agent")
    module.__doc__ = "A mailbox NS agent bound to one psaspm Mailbox."
    setattr(module, entry_point, entry)
    module.mailbox = mailbox  # type: ignore[attr-defined]
    return module


def _dispatch(mailbox: Mailbox, index: int, slot: Slot, base: int, limit: int) -> None:
    """One request: synchronous answers reply at once; calls reply when the service does."""
    op = slot.op
    if op is Op.FRAMEWORK_VERSION:
        mailbox.reply(index, psa_framework_version())
        return
    if op is Op.VERSION:
        mailbox.reply(index, psa_version(slot.args[0]))
        return
    client_id = translate_client_id(slot.ns_client_id, base, limit)
    if client_id is None:
        mailbox.reply(index, PSA_ERROR_INVALID_ARGUMENT)
        return
    if op is Op.CONNECT:
        sid, version = slot.args
        status = agent_psa_connect(sid, version, client_id, index)
    elif op is Op.CALL:
        handle, type_, in_vecs = slot.args
        status = agent_psa_call(handle, type_, in_vecs, slot.outs, client_id, index)
    else:
        status = agent_psa_close(slot.args[0], client_id, index)
    if status != PSA_SUCCESS:
        mailbox.reply(index, status)  # refused: nothing reached the service
