"""Python code for tf-m-tests' FLIH and SLIH test partitions, driving the real timer.

As TF-M's own regression tests do: a test case arms the platform timer
(``TFM_PERIPHERAL_TIMER0``) and blocks in ``psa_wait`` until its interrupt
arrives; nobody calls ``system.tick``, so platform time must pass while the
SPE waits.  The FLIH variant counts ``FLIH_TICKS`` expiries before it signals.
"""

from __future__ import annotations

from typing import Any

from psaspm import hal
from psaspm.psa import (
    PSA_BLOCK,
    PSA_FLIH_NO_SIGNAL,
    PSA_FLIH_SIGNAL,
    PSA_SUCCESS,
    PSA_WAIT_ANY,
    psa_eoi,
    psa_get,
    psa_irq_disable,
    psa_irq_enable,
    psa_reply,
    psa_reset_signal,
    psa_wait,
)

LOG: list[str] = []
RELOAD = 1000  # ticks between expiries
FLIH_TICKS = 3
CTRL, VALUE, RELOAD_REG, INTCLEAR = 0x0, 0x4, 0x8, 0xC
ENABLE_WITH_IRQ = 0x9
_flih_count = 0
BUSY_WAIT = False  # the FLIH case busy-waits with hal.wfi() instead of psa_wait


def _timer() -> int:
    return hal.peripheral_base("TFM_PERIPHERAL_TIMER0")


def _signal() -> int:
    return int(hal.constants()["TFM_TIMER0_IRQ_SIGNAL"])


def _arm() -> None:
    base = _timer()
    hal.write32(base + RELOAD_REG, RELOAD)
    hal.write32(base + VALUE, RELOAD)
    hal.write32(base + CTRL, ENABLE_WITH_IRQ)


def _stop_and_clear() -> None:
    base = _timer()
    hal.write32(base + CTRL, 0)
    hal.write32(base + INTCLEAR, 1)


def tfm_timer0_irq_flih() -> int:
    """Clear the device; signal the partition on the FLIH_TICKS-th expiry."""
    global _flih_count
    hal.write32(_timer() + INTCLEAR, 1)
    _flih_count += 1
    LOG.append(f"flih {_flih_count}")
    if _flih_count < FLIH_TICKS:
        return PSA_FLIH_NO_SIGNAL
    _flih_count = 0
    hal.write32(_timer() + CTRL, 0)
    return PSA_FLIH_SIGNAL


def _run_case(flih: bool) -> int:
    signal = _signal()
    psa_irq_enable(signal)
    _arm()
    if BUSY_WAIT:
        while len(LOG) < FLIH_TICKS:  # as tf-m-tests' FLIH case spins on a flag with __WFI()
            hal.wfi()
    got = psa_wait(signal, PSA_BLOCK)
    LOG.append(f"woken {got:#x}")
    if flih:
        psa_reset_signal(signal)
    else:
        _stop_and_clear()
        psa_eoi(signal)
    psa_irq_disable(signal)
    return PSA_SUCCESS


def tfm_slih_test_case_sfn(msg: Any) -> int:
    return _run_case(flih=False)


def tfm_flih_test_case_sfn(msg: Any) -> int:
    return _run_case(flih=True)


def _serve(service_signal_name: str, flih: bool) -> None:
    service_signal = int(hal.constants()[service_signal_name])
    while True:
        psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        msg = psa_get(service_signal)
        psa_reply(msg.handle, _run_case(flih))


def tfm_slih_test_service_entry() -> None:
    _serve("TFM_SLIH_TEST_CASE_SIGNAL", flih=False)


def tfm_flih_test_service_entry() -> None:
    _serve("TFM_FLIH_TEST_CASE_SIGNAL", flih=True)
