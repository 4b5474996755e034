"""TFM_SP_DEMO_TIMER: a timer driver partition (IPC model) with a FLIH and a SLIH.

The hardware is two memory-mapped Arm CMSDK-style timers from the platform
description, listed in the manifest's ``mmio_regions``:

- ``TFM_PERIPHERAL_TIMER0`` drives ``TFM_TIMER0_IRQ``: the periodic tick.  Its
  handler is a FLIH (first-level, in handler mode): it clears the timer's
  interrupt (INTCLEAR), counts the tick, and only signals the partition
  (``PSA_FLIH_SIGNAL``) when the count reaches the run's length; it then stops
  the timer.
- ``TFM_PERIPHERAL_TIMER1`` drives ``TFM_TIMER1_IRQ``: a one-shot alarm.  Its
  handler is a SLIH (second-level): the SPM masks the source and asserts the
  signal; the partition's thread stops the timer, clears its interrupt, counts
  the alarm and calls ``psa_eoi``.

The driver programs the timers with ``hal.write32`` (RELOAD, VALUE, CTRL);
time passes only when the non-secure side advances platform time with
``system.tick(n)``.  Each timer counts down one per tick and interrupts on
reaching zero.

Service DEMO_TIMER (connection-based).  Every request is replied at once: a
non-secure caller is blocked until its reply, and it is the non-secure side
that advances time, so a client starts a run, lets time pass, then asks.

================  ====================================  ===========================
type              in-vectors                            out-vectors
================  ====================================  ===========================
TIMER_START 1     ticks (4 bytes LE, 1..64),            -
                  alarm after N ticks (4 bytes LE,
                  1..64; optional, none if omitted)
TIMER_STATUS 2    -                                     ticks counted by the FLIH
                                                        (4), alarms handled by
                                                        the SLIH (4), in this run
================  ====================================  ===========================

TIMER_START programs TIMER0 to interrupt on every tick for ``ticks`` ticks and
TIMER1 to interrupt once, ``alarm`` ticks from now; a start while the previous
run's ticks or alarm are still due is PSA_ERROR_BAD_STATE.  Closing the
connection stops both timers.
"""

from __future__ import annotations

import struct

from psaspm import hal
from psaspm.psa import (
    PSA_BLOCK,
    PSA_ERROR_BAD_STATE,
    PSA_ERROR_INVALID_ARGUMENT,
    PSA_ERROR_NOT_SUPPORTED,
    PSA_FLIH_NO_SIGNAL,
    PSA_FLIH_SIGNAL,
    PSA_IPC_CALL,
    PSA_IPC_DISCONNECT,
    PSA_SUCCESS,
    psa_eoi,
    psa_get,
    psa_irq_enable,
    psa_msg_t,
    psa_read,
    psa_reply,
    psa_reset_signal,
    psa_wait,
    psa_write,
)

TIMER_START = 1
TIMER_STATUS = 2
MAX_TICKS = 64

TICK_TIMER = "TFM_PERIPHERAL_TIMER0"  # drives TFM_TIMER0_IRQ (FLIH)
ALARM_TIMER = "TFM_PERIPHERAL_TIMER1"  # drives TFM_TIMER1_IRQ (SLIH)

# CMSDK timer registers and CTRL bits.
CTRL, VALUE, RELOAD, INTCLEAR = 0x0, 0x4, 0x8, 0xC
CTRL_ENABLE, CTRL_IRQ_ENABLE = 0x1, 0x8


def _start_timer(base: int, ticks: int) -> None:
    """Interrupt ``ticks`` ticks from now, and every ``ticks`` ticks after that."""
    hal.write32(base + RELOAD, ticks)
    hal.write32(base + VALUE, ticks)
    hal.write32(base + CTRL, CTRL_ENABLE | CTRL_IRQ_ENABLE)


def _stop_timer(base: int) -> None:
    hal.write32(base + CTRL, 0)
    hal.write32(base + INTCLEAR, 1)  # lowers the interrupt line


class Driver:
    """What the FLIH and the thread share: the current run's ticks and alarms."""

    def __init__(self) -> None:
        self.ticks = 0  # ticks counted by the FLIH since the current run began
        self.deadline = 0  # the run's length: the FLIH stops the timer there
        self.running = False  # a run started and the FLIH has not yet signalled its end
        self.alarm_due = False
        self.alarms = 0  # alarms handled by the SLIH since the current run began


DRIVER = Driver()


def demo_tick_irq_flih() -> int:
    """First-level handler of the tick, in handler mode: no PSA API calls here."""
    base = hal.peripheral_base(TICK_TIMER)
    hal.write32(base + INTCLEAR, 1)
    DRIVER.ticks += 1
    if DRIVER.ticks == DRIVER.deadline:
        _stop_timer(base)
        return PSA_FLIH_SIGNAL  # wake the thread: the run is over
    return PSA_FLIH_NO_SIGNAL


def _count(msg: psa_msg_t, index: int) -> int | None:
    """A 1..MAX_TICKS count from in-vector ``index``, or None if it is malformed."""
    if msg.in_size[index] != 4:
        return None
    (value,) = struct.unpack("<I", psa_read(msg.handle, index, 4))
    return value if 1 <= value <= MAX_TICKS else None


def _start(msg: psa_msg_t) -> int:
    ticks = _count(msg, 0)
    alarm = _count(msg, 1) if msg.in_size[1] else 0
    if ticks is None or alarm is None:
        return PSA_ERROR_INVALID_ARGUMENT
    if DRIVER.running or DRIVER.alarm_due:
        return PSA_ERROR_BAD_STATE
    DRIVER.ticks = 0
    DRIVER.alarms = 0
    DRIVER.deadline = ticks
    DRIVER.running = True
    _start_timer(hal.peripheral_base(TICK_TIMER), 1)  # a tick on every tick of platform time
    if alarm:
        DRIVER.alarm_due = True
        _start_timer(hal.peripheral_base(ALARM_TIMER), alarm)
    return PSA_SUCCESS


def _status(msg: psa_msg_t) -> int:
    counts = struct.pack("<II", DRIVER.ticks, DRIVER.alarms)
    for index, value in enumerate((counts[:4], counts[4:])):
        if msg.out_size[index] >= 4:
            psa_write(msg.handle, index, value)
    return PSA_SUCCESS


def _serve(msg: psa_msg_t) -> int:
    if msg.type == PSA_IPC_DISCONNECT:  # the session ends: stop both timers
        _stop_timer(hal.peripheral_base(TICK_TIMER))
        _stop_timer(hal.peripheral_base(ALARM_TIMER))
        DRIVER.running = False
        DRIVER.alarm_due = False
        return PSA_SUCCESS
    if msg.type < PSA_IPC_CALL:
        return PSA_SUCCESS  # CONNECT
    if msg.type == TIMER_START:
        return _start(msg)
    if msg.type == TIMER_STATUS:
        return _status(msg)
    return PSA_ERROR_NOT_SUPPORTED


def timer_main() -> None:
    names = hal.constants()
    service = names["DEMO_TIMER_SIGNAL"]
    tick = names["DEMO_TICK_IRQ_SIGNAL"]
    alarm = names["DEMO_ALARM_IRQ_SIGNAL"]
    _stop_timer(hal.peripheral_base(TICK_TIMER))
    _stop_timer(hal.peripheral_base(ALARM_TIMER))
    psa_irq_enable(tick)
    psa_irq_enable(alarm)
    while True:
        signals = psa_wait(service | tick | alarm, PSA_BLOCK)
        if signals & tick:  # the FLIH counted the run's last tick and stopped the timer
            psa_reset_signal(tick)
            DRIVER.running = False
        if signals & alarm:  # the SLIH: handled here, in the thread
            _stop_timer(hal.peripheral_base(ALARM_TIMER))  # one-shot: no reload
            if DRIVER.alarm_due:
                DRIVER.alarm_due = False
                DRIVER.alarms += 1
            psa_eoi(alarm)
        if signals & service:
            msg = psa_get(service)
            psa_reply(msg.handle, _serve(msg))
