"""The kernel's mailbox NS agent API (TF-M HEAD): asynchronous agent calls, replies
collected with psa_get(ASYNC_MSG_REPLY), client IDs chosen by the agent."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

import psaspm
from psaspm import hal
from psaspm.kernel.objects import RepliedCall
from psaspm.psa import (
    ASYNC_MSG_REPLY,
    PSA_BLOCK,
    PSA_ERROR_PROGRAMMER_ERROR,
    PSA_IPC_CONNECT,
    PSA_IPC_DISCONNECT,
    PSA_SUCCESS,
    PSA_WAIT_ANY,
    agent_psa_call,
    agent_psa_close,
    agent_psa_connect,
    psa_eoi,
    psa_get,
    psa_irq_enable,
    psa_wait,
)

TFM_LIST = "tfm-manifests/trusted-firmware-m/tools/tfm_manifest_list.yaml"
# TF-M's own manifest list with only its mailbox NS agent enabled.
MAILBOX_ONLY = {
    "TFM_PARTITION_NS_AGENT_MAILBOX": 1,
    "TFM_PARTITION_PROTECTED_STORAGE": 0,
    "TFM_PARTITION_INTERNAL_TRUSTED_STORAGE": 0,
    "TFM_PARTITION_CRYPTO": 0,
    "TFM_PARTITION_PLATFORM": 0,
    "TFM_PARTITION_INITIAL_ATTESTATION": 0,
    "TFM_PARTITION_FIRMWARE_UPDATE": 0,
}
ECHO = Path(__file__).resolve().parents[2] / "examples" / "echo" / "echo_service.yaml"


def make_agent(requests: list[tuple[Any, ...]], replies: list[Any]) -> types.ModuleType:
    """A tiny mailbox agent: on its IRQ it issues ``requests``; it collects replies."""

    def ns_agent_mailbox_entry() -> None:
        irq = hal.constants()["MAILBOX_INTERRUPT_SIGNAL"]
        psa_irq_enable(irq)
        while True:
            signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
            if signals & irq:
                hal.deassert_irq("MAILBOX_IRQ")
                psa_eoi(irq)
                while requests:
                    op, *args = requests.pop(0)
                    replies.append(("sync", op(*args)))
            if signals & ASYNC_MSG_REPLY:
                msg = psa_get(ASYNC_MSG_REPLY)
                done = msg.rhandle
                assert isinstance(done, RepliedCall)
                replies.append((done.client_data, done.replied_value, msg.type, msg.client_id))

    module = types.ModuleType("test_agent")
    module.ns_agent_mailbox_entry = ns_agent_mailbox_entry  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize("isolation", [1, 2, 3])
def test_agent_calls_are_asynchronous(shared_dir: Path, isolation: int) -> None:
    """Agent connect, call and close return only a status at once; each reply comes later via
    psa_get(ASYNC_MSG_REPLY) with its token, value, type and NS client ID."""
    requests: list[tuple[Any, ...]] = []
    replies: list[Any] = []
    system = psaspm.load(
        [shared_dir / TFM_LIST, ECHO],
        config=MAILBOX_ONLY,
        isolation=isolation,
        code={"TFM_NS_MAILBOX_AGENT": make_agent(requests, replies)},
    )
    system.boot()
    sid = system.constants["EXAMPLE_ECHO_SID"]
    requests.append((agent_psa_connect, sid, 1, -0x04000001, "slot0"))
    system.assert_irq("MAILBOX_IRQ")
    assert replies[0] == ("sync", PSA_SUCCESS)
    token, handle, kind, client_id = replies[1]
    assert (token, kind, client_id) == ("slot0", PSA_IPC_CONNECT, -0x04000001)
    assert handle > 0
    replies.clear()
    out = [bytearray(8), bytearray(8)]
    requests += [
        (agent_psa_call, handle, 0, [b"ab"], [out[0]], -0x04000001, "a"),
        (agent_psa_call, handle, 0, [b"cd"], [out[1]], -0x04000001, "b"),
        (agent_psa_call, handle, 0, [b"ef"], [bytearray(8)], -0x04000002, "c"),  # not its handle
    ]
    system.assert_irq("MAILBOX_IRQ")
    # The echo partition (NORMAL) preempts the agent (LOW) as each call is delivered;
    # the replies still wait for the agent's psa_get, in reply order.
    assert [r for r in replies if r[0] == "sync"] == [
        ("sync", PSA_SUCCESS),
        ("sync", PSA_SUCCESS),
        ("sync", PSA_ERROR_PROGRAMMER_ERROR),  # another client's handle: nothing delivered
    ]
    assert [r[:2] for r in replies if r[0] != "sync"] == [("a", PSA_SUCCESS), ("b", PSA_SUCCESS)]
    assert out == [b"ab", b"cd"]
    replies.clear()
    requests.append((agent_psa_close, handle, -0x04000001, "bye"))
    system.assert_irq("MAILBOX_IRQ")
    assert replies == [("sync", PSA_SUCCESS), ("bye", PSA_SUCCESS, PSA_IPC_DISCONNECT, -0x04000001)]
    assert system.stats["connections_in_use"] == 0


def test_agent_api_refused_to_other_partitions(shared_dir: Path) -> None:
    """Only a mailbox NS agent may call on behalf of NS clients: anyone else panics."""
    requests: list[tuple[Any, ...]] = []
    replies: list[Any] = []
    system = psaspm.load(
        [shared_dir / TFM_LIST, ECHO],
        config=MAILBOX_ONLY,
        code={"TFM_NS_MAILBOX_AGENT": make_agent(requests, replies)},
    )
    system.boot()
    requests.append((agent_psa_connect, 0xF000, 1, 5, None))  # a positive client ID
    with pytest.raises(psaspm.Panic) as info:
        system.assert_irq("MAILBOX_IRQ")
    assert info.value.record.api == "agent_psa_connect"


def test_sfn_backend_refuses_the_mailbox_agent(shared_dir: Path) -> None:
    """A system with TF-M's mailbox NS agent cannot boot on the SFN backend (ConfigError)."""
    system = psaspm.load(
        [shared_dir / TFM_LIST],
        config=MAILBOX_ONLY,
        backend="sfn",
        code={"TFM_NS_MAILBOX_AGENT": make_agent([], [])},
    )
    with pytest.raises(psaspm.ConfigError, match="SFN backend"):
        system.boot()


def test_plain_psa_call_from_the_agent_panics(shared_dir: Path) -> None:
    """A mailbox NS agent calls services only through the agent API; a plain psa_call would not say for whom."""
    from psaspm.psa import psa_connect

    requests: list[tuple[Any, ...]] = []
    replies: list[Any] = []
    system = psaspm.load(
        [shared_dir / TFM_LIST, ECHO],
        config=MAILBOX_ONLY,
        code={"TFM_NS_MAILBOX_AGENT": make_agent(requests, replies)},
    )
    system.boot()
    requests.append((psa_connect, system.constants["EXAMPLE_ECHO_SID"], 1))
    with pytest.raises(psaspm.Panic) as info:
        system.assert_irq("MAILBOX_IRQ")
    assert info.value.record.partition == "TFM_NS_MAILBOX_AGENT"
    assert "agent_psa_call" in info.value.record.reason
