"""A non-secure client process for the psaspm serve tests.

``python worker.py ADDR MODE [N]``:
- ``echo N``: N calls with unique payloads, 4 in flight at a time (asyncio
  client), half through a connection handle, half through the stateless
  handle; prints a JSON summary; exits 1 on any mismatch.
- ``hold``: opens a connection, prints its client ID, then blocks in a HOLD
  call (the test kills it there).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from psaspm import remote

ECHO_SID, STATELESS, HOLD = 0xF800, 0x40000100, 2


async def echo(addr: str, n: int) -> int:
    client = await remote.connect_async(addr)
    handles = [await client.connect(ECHO_SID, 1) for _ in range(2)]
    assert all(h > 0 for h in handles), handles
    tag = f"{os.getpid()}:{client.client_id}:".encode()
    bad = 0

    async def lane(lane_no: int) -> int:
        errors = 0
        target = handles[lane_no] if lane_no < 2 else STATELESS
        for i in range(lane_no, n, 4):
            payload = tag + b"%d" % i
            out = bytearray(len(payload) + 8)
            status = await client.call(target, 0, [payload[:5], payload[5:]], [out])
            if status != 0 or out != payload:
                errors += 1
        return errors

    bad = sum(await asyncio.gather(*(lane(k) for k in range(4))))
    for handle in handles:
        await client.close(handle)
    await client.disconnect()
    print(json.dumps({"client_id": client.client_id, "calls": n, "bad": bad}), flush=True)
    return 1 if bad else 0


def hold(addr: str) -> int:
    client = remote.connect(addr)
    handle = client.connect(ECHO_SID, 1)
    print(json.dumps({"client_id": client.client_id, "handle": handle}), flush=True)
    client.call(handle, HOLD)
    return 0


if __name__ == "__main__":
    address, mode = sys.argv[1], sys.argv[2]
    if mode == "echo":
        sys.exit(asyncio.run(echo(address, int(sys.argv[3]))))
    sys.exit(hold(address))
