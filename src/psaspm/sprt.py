"""Partition-side runtime: the thread body SFN-model partitions run under the IPC backend.

As TF-M's ``common_sfn_thread``: run ``entry_init`` once (anything but
PSA_SUCCESS panics), then forever wait for any service signal, and for each
asserted one, lowest bit first, take one message and reply with what the
service function returns.  It reaches the SPM only through ``psaspm.psa``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psaspm import psa
from psaspm.consts import PSA_BLOCK, PSA_SUCCESS


def common_sfn_thread(
    init: Callable[[], Any] | None, sfns: Sequence[Callable[[psa.psa_msg_t], int] | None]
) -> Callable[[], None]:
    mask = (1 << len(sfns)) - 1

    def body() -> None:
        if init is not None:
            status = init()
            # Contract: a negative status panics; None (no return statement) counts as success.
            if status is not None and (status.__class__ is not int or status < PSA_SUCCESS):
                raise RuntimeError(f"entry_init returned {status!r}")
        while True:
            signals = psa.psa_wait(mask, PSA_BLOCK)
            for index, sfn in enumerate(sfns):
                bit = 1 << index
                if not signals & bit:
                    continue
                if sfn is None:
                    psa.psa_panic()
                msg = psa.psa_get(bit)
                psa.psa_reply(msg.handle, sfn(msg))
                signals &= ~bit
            if signals:
                psa.psa_panic()

    return body
