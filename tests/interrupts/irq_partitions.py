"""Python code for tf-m-tests' FLIH and SLIH test partitions (manifests used unmodified).

Both manifests say ``model: dual``, so the same module serves the IPC entry
point (IPC backend) and the service function (SFN backend).  A service call
runs one test case: enable the timer interrupt, make the "timer" raise its
line, wait for the interrupt signal, clear the device and acknowledge.
The test reads ``LOG``.
"""

from __future__ import annotations

from typing import Any

from psaspm import hal
from psaspm.psa import (
    PSA_BLOCK,
    PSA_FLIH_SIGNAL,
    PSA_SUCCESS,
    PSA_WAIT_ANY,
    psa_eoi,
    psa_get,
    psa_irq_enable,
    psa_reply,
    psa_reset_signal,
    psa_wait,
)

LOG: list[str] = []
SOURCE = "TFM_TIMER0_IRQ"


def _irq_signal() -> int:
    return int(hal.constants()["TFM_TIMER0_IRQ_SIGNAL"])


def tfm_timer0_irq_flih() -> int:
    """The FLIH: count the tick, clear the device's line, and signal the partition."""
    LOG.append("flih")
    hal.deassert_irq(SOURCE)
    return PSA_FLIH_SIGNAL


def _run_case(flih: bool) -> int:
    signal = _irq_signal()
    psa_irq_enable(signal)
    LOG.append("timer start")
    hal.assert_irq(SOURCE)  # the timer expires at once
    got = psa_wait(signal, PSA_BLOCK)
    LOG.append(f"woken {got:#x}")
    if flih:
        psa_reset_signal(signal)
    else:
        hal.deassert_irq(SOURCE)
        psa_eoi(signal)
    return PSA_SUCCESS


def tfm_slih_test_case_sfn(msg: Any) -> int:
    return _run_case(flih=False)


def tfm_flih_test_case_sfn(msg: Any) -> int:
    return _run_case(flih=True)


def _serve(service_signal_name: str, flih: bool) -> None:
    service_signal = int(hal.constants()[service_signal_name])
    while True:
        signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        if signals & service_signal:
            msg = psa_get(service_signal)
            psa_reply(msg.handle, _run_case(flih))
        elif signals & _irq_signal():
            # The shared source fired while another partition's test case ran it.
            LOG.append("stray")
            if flih:
                psa_reset_signal(_irq_signal())
            else:
                psa_eoi(_irq_signal())


def tfm_slih_test_service_entry() -> None:
    _serve("TFM_SLIH_TEST_CASE_SIGNAL", flih=False)


def tfm_flih_test_service_entry() -> None:
    _serve("TFM_FLIH_TEST_CASE_SIGNAL", flih=True)
