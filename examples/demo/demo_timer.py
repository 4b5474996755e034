"""TFM_SP_DEMO_TIMER: a timer driver partition (IPC model) with a FLIH and a SLIH.

The hardware is :class:`TimerDevice`: a periodic tick (TFM_TIMER0_IRQ) and a
one-shot alarm (TFM_TIMER1_IRQ), each driving its interrupt line through
``psaspm.hal``.  The device logic is kept in that one class so that a
memory-mapped timer model can replace it.

- The tick is handled by a FLIH (first-level handler, in handler mode): it
  counts the tick and clears the device, and only signals the partition
  (``PSA_FLIH_SIGNAL``) when the count reaches the deadline of a sleep.
- The alarm is handled by a SLIH (second-level): the SPM masks the source and
  asserts the signal; the partition's thread handles it and calls psa_eoi.

Service DEMO_TIMER (connection-based):

===============  =========================  =============================
type             in-vectors                 reply / out-vectors
===============  =========================  =============================
TIMER_SLEEP 1    ticks (4 bytes LE, 1..64)  ticks counted by the FLIH (4)
TIMER_ALARM 2    -                          alarms so far (4)
===============  =========================  =============================

A request is answered when its interrupt arrives: the driver keeps the message
and replies from the interrupt's handling (a deferred reply).
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

TIMER_SLEEP = 1
TIMER_ALARM = 2
TICK_SOURCE = "TFM_TIMER0_IRQ"
ALARM_SOURCE = "TFM_TIMER1_IRQ"
MAX_TICKS = 64


class TimerDevice:
    """The timer hardware: a tick counter and an alarm, each with a level interrupt line."""

    def __init__(self) -> None:
        self.ticks_to_go = 0
        self.alarm_armed = False

    def start_ticks(self, count: int) -> None:
        """Program ``count`` periodic ticks; the time they take passes here."""
        self.ticks_to_go = count
        while self.ticks_to_go:
            self.ticks_to_go -= 1
            hal.assert_irq(TICK_SOURCE)  # taken at once: the FLIH clears the line

    def ack_tick(self) -> None:
        hal.deassert_irq(TICK_SOURCE)

    def arm_alarm(self) -> None:
        """Arm the one-shot alarm; it expires at once and raises its line until cleared."""
        self.alarm_armed = True
        hal.assert_irq(ALARM_SOURCE)

    def ack_alarm(self) -> None:
        self.alarm_armed = False
        hal.deassert_irq(ALARM_SOURCE)


DEVICE = TimerDevice()


class Driver:
    """What the FLIH and the thread share: tick counts and the requests waiting."""

    def __init__(self) -> None:
        self.ticks = 0  # ticks counted by the FLIH since the current sleep began
        self.deadline = 0  # the FLIH signals when ``ticks`` reaches it (0: never)
        self.alarms = 0
        self.sleeper: psa_msg_t | None = None  # the sleep request waiting for its deadline
        self.alarm_waiter: psa_msg_t | None = None


DRIVER = Driver()


def demo_tick_irq_flih() -> int:
    """First-level handler of the tick, in handler mode: no PSA API calls here."""
    DEVICE.ack_tick()
    DRIVER.ticks += 1
    if DRIVER.deadline and DRIVER.ticks >= DRIVER.deadline:
        DRIVER.deadline = 0
        return PSA_FLIH_SIGNAL  # wake the thread: the sleep is over
    return PSA_FLIH_NO_SIGNAL


def _request(msg: psa_msg_t) -> int | None:
    """Start a request; a status to reply now, or None if the reply waits for an interrupt."""
    if msg.type < PSA_IPC_CALL:
        return PSA_SUCCESS  # CONNECT and DISCONNECT
    if msg.type == TIMER_SLEEP:
        if msg.in_size[0] != 4:
            return PSA_ERROR_INVALID_ARGUMENT
        (count,) = struct.unpack("<I", psa_read(msg.handle, 0, 4))
        if not 1 <= count <= MAX_TICKS:
            return PSA_ERROR_INVALID_ARGUMENT
        if DRIVER.sleeper is not None:
            return PSA_ERROR_BAD_STATE
        DRIVER.sleeper = msg
        DRIVER.ticks = 0
        DRIVER.deadline = count
        DEVICE.start_ticks(count)
        return None
    if msg.type == TIMER_ALARM:
        if DRIVER.alarm_waiter is not None:
            return PSA_ERROR_BAD_STATE
        DRIVER.alarm_waiter = msg
        DEVICE.arm_alarm()
        return None
    return PSA_ERROR_NOT_SUPPORTED


def _reply_with_count(msg: psa_msg_t, count: int) -> None:
    if msg.out_size[0] >= 4:
        psa_write(msg.handle, 0, struct.pack("<I", count))
    psa_reply(msg.handle, PSA_SUCCESS)


def timer_main() -> None:
    names = hal.constants()
    service = names["DEMO_TIMER_SIGNAL"]
    tick = names["DEMO_TICK_IRQ_SIGNAL"]
    alarm = names["DEMO_ALARM_IRQ_SIGNAL"]
    psa_irq_enable(tick)
    psa_irq_enable(alarm)
    while True:
        signals = psa_wait(service | tick | alarm, PSA_BLOCK)
        if signals & tick:  # the FLIH saw the deadline
            psa_reset_signal(tick)
            if DRIVER.sleeper is not None:
                _reply_with_count(DRIVER.sleeper, DRIVER.ticks)
                DRIVER.sleeper = None
        if signals & alarm:  # the SLIH: handled here, in the thread
            DEVICE.ack_alarm()
            DRIVER.alarms += 1
            psa_eoi(alarm)
            if DRIVER.alarm_waiter is not None:
                _reply_with_count(DRIVER.alarm_waiter, DRIVER.alarms)
                DRIVER.alarm_waiter = None
        if signals & service:
            msg = psa_get(service)
            status = _request(msg)
            if status is not None:
                psa_reply(msg.handle, status)
