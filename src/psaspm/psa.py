"""The PSA Firmware Framework API for partition code: the one door into the SPM.

Partition code imports its API from here, under the same names as in C.  Each
function acts for the partition that is running, through the interface the
system was built with (SFN, cross call or SVC).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from psaspm.consts import *  # noqa: F403 - the PSA constants are part of this module's API
from psaspm.consts import PSA_IPC_CALL
from psaspm.kernel.door import DOOR
from psaspm.kernel.objects import Buffer, InVec, OutVec, PsaMsg

psa_msg_t = PsaMsg


def psa_framework_version() -> int:
    return DOOR.iface.psa_framework_version()  # type: ignore[no-any-return]


def psa_version(sid: int) -> int:
    return DOOR.iface.psa_version(sid)  # type: ignore[no-any-return]


def psa_connect(sid: int, version: int) -> int:
    return DOOR.iface.psa_connect(sid, version)  # type: ignore[no-any-return]


def psa_call(
    handle: int,
    type: int = PSA_IPC_CALL,
    in_vecs: Sequence[InVec] = (),
    out_vecs: Sequence[OutVec] = (),
) -> int:
    return DOOR.iface.psa_call(handle, type, in_vecs, out_vecs)  # type: ignore[no-any-return]


def psa_close(handle: int) -> None:
    DOOR.iface.psa_close(handle)


def psa_wait(signal_mask: int, timeout: int) -> int:
    return DOOR.iface.psa_wait(signal_mask, timeout)  # type: ignore[no-any-return]


def psa_get(signal: int) -> PsaMsg:
    return DOOR.iface.psa_get(signal)  # type: ignore[no-any-return]


def psa_read(msg_handle: int, invec_idx: int, num_bytes: int) -> bytes:
    return DOOR.iface.psa_read(msg_handle, invec_idx, num_bytes)  # type: ignore[no-any-return]


def psa_skip(msg_handle: int, invec_idx: int, num_bytes: int) -> int:
    return DOOR.iface.psa_skip(msg_handle, invec_idx, num_bytes)  # type: ignore[no-any-return]


def psa_write(msg_handle: int, outvec_idx: int, data: Buffer) -> None:
    DOOR.iface.psa_write(msg_handle, outvec_idx, data)


def psa_reply(msg_handle: int, status: int) -> None:
    DOOR.iface.psa_reply(msg_handle, status)


def psa_set_rhandle(msg_handle: int, rhandle: Any) -> None:
    DOOR.iface.psa_set_rhandle(msg_handle, rhandle)


def psa_notify(partition_id: int) -> None:
    DOOR.iface.psa_notify(partition_id)


def psa_clear() -> None:
    DOOR.iface.psa_clear()


def psa_panic() -> NoReturn:
    DOOR.iface.psa_panic()
    raise AssertionError("psa_panic returned")  # pragma: no cover


def psa_rot_lifecycle_state() -> int:
    return DOOR.iface.psa_rot_lifecycle_state()  # type: ignore[no-any-return]


def psa_irq_enable(irq_signal: int) -> None:
    DOOR.iface.psa_irq_enable(irq_signal)


def psa_irq_disable(irq_signal: int) -> int:
    return DOOR.iface.psa_irq_disable(irq_signal)  # type: ignore[no-any-return]


def psa_eoi(irq_signal: int) -> None:
    DOOR.iface.psa_eoi(irq_signal)


def psa_reset_signal(irq_signal: int) -> None:
    DOOR.iface.psa_reset_signal(irq_signal)


def psa_map_invec(msg_handle: int, invec_idx: int) -> memoryview:
    return DOOR.iface.psa_map_invec(msg_handle, invec_idx)  # type: ignore[no-any-return]


def psa_unmap_invec(msg_handle: int, invec_idx: int) -> None:
    DOOR.iface.psa_unmap_invec(msg_handle, invec_idx)


def psa_map_outvec(msg_handle: int, outvec_idx: int) -> memoryview:
    return DOOR.iface.psa_map_outvec(msg_handle, outvec_idx)  # type: ignore[no-any-return]


def psa_unmap_outvec(msg_handle: int, outvec_idx: int, length: int) -> None:
    DOOR.iface.psa_unmap_outvec(msg_handle, outvec_idx, length)


# The mailbox NS agent API (TF-M HEAD ``mailbox_agent_api.h``): for a mailbox NS agent
# only.  Each call acts for the NS client ``client_id`` (already translated into the
# agent's range) and returns at once: PSA_SUCCESS when the message is on its way, else
# the error status.  The reply arrives later as the ASYNC_MSG_REPLY signal;
# ``psa_get(ASYNC_MSG_REPLY).rhandle`` is a RepliedCall carrying ``client_data`` and
# ``replied_value``.  Out-vectors are resized, as for psa_call, before that signal.
def agent_psa_call(
    handle: int,
    type: int,
    in_vecs: Sequence[InVec],
    out_vecs: Sequence[OutVec],
    client_id: int,
    client_data: Any = None,
) -> int:
    return DOOR.iface.agent_psa_call(handle, type, in_vecs, out_vecs, client_id, client_data)  # type: ignore[no-any-return]


def agent_psa_connect(sid: int, version: int, client_id: int, client_data: Any = None) -> int:
    return DOOR.iface.agent_psa_connect(sid, version, client_id, client_data)  # type: ignore[no-any-return]


def agent_psa_close(handle: int, client_id: int, client_data: Any = None) -> int:
    return DOOR.iface.agent_psa_close(handle, client_id, client_data)  # type: ignore[no-any-return]
