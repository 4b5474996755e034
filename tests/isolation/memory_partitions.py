"""Partition code for the isolation tests: one module serves three SFN partitions.

A service call's in-vector 0 is a command; out-vector 0 receives any data:
- ``b"alloc"``: allocate 16 bytes of private data holding b"secret:<name>", reply the address;
- ``b"peek <addr>"``: read 16 bytes at addr (a MemManage fault if the boundary forbids);
- ``b"poke <addr>"``: write 4 bytes at addr;
- ``b"pass <handle> <addr> <len>"``: call the stateless service ``handle`` with
  ``b"alloc"`` and a pointer in-vector (the SPM checks it against this partition's boundary);
- ``b"timer <reload>"``: program TFM_PERIPHERAL_TIMER0 to interrupt after ``reload`` ticks;
- ``b"timer-read"``: read the timer's INTSTATUS;
- ``b"timer-status"``: read the timer's INTSTATUS, then clear it.
"""

from __future__ import annotations

from typing import Any

from psaspm import hal
from psaspm.kernel.memory import Ptr
from psaspm.psa import psa_call, psa_read, psa_write


def _serve(name: str, msg: Any) -> int:
    command = psa_read(msg.handle, 0, msg.in_size[0]).decode().split()
    op, args = command[0], [int(a, 0) for a in command[1:]]
    if op == "alloc":
        ptr = hal.malloc(16)
        hal.write(ptr, f"secret:{name}".encode().ljust(16, b"\0"))
        return ptr.addr
    if op == "peek":
        psa_write(msg.handle, 0, hal.read(args[0], 16))
        return 0
    if op == "poke":
        hal.write(args[0], b"\xde\xad\xbe\xef")
        return 0
    if op == "pass":
        out = bytearray(16)
        return psa_call(args[0], 0, [b"alloc", Ptr(args[1], args[2])], [out])
    timer = hal.peripheral_base("TFM_PERIPHERAL_TIMER0")
    if op == "timer":
        hal.write32(timer + 0x8, args[0])  # RELOAD
        hal.write32(timer + 0x4, args[0])  # VALUE
        hal.write32(timer + 0x0, 0x9)  # enable, interrupt enable
        return 0
    if op == "timer-read":
        return hal.read32(timer + 0xC)
    if op == "timer-status":
        status = hal.read32(timer + 0xC)
        hal.write32(timer + 0xC, 1)  # INTCLEAR
        return status
    raise ValueError(f"unknown command {op!r}")


def tfm_a_sfn(msg: Any) -> int:
    return _serve("A", msg)


def tfm_b_sfn(msg: Any) -> int:
    return _serve("B", msg)


def tfm_p_sfn(msg: Any) -> int:
    return _serve("P", msg)
