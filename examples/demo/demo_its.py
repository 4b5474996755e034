"""TFM_SP_DEMO_ITS: an internal-trusted-storage-like service (SFN model, stateless).

Assets live in a flash image, a file: ``$PSASPM_DEMO_FLASH`` or, by default, one
per user: ``demo/its_flash.img`` under ``$PSASPM_CACHE`` (default
``~/.cache/psaspm``), or ``psaspm-demo-<uid>/`` in the temporary directory when
there is no writable home.  Every
change rewrites the whole image atomically (write a temporary file in the same
directory, flush, fsync, ``os.replace``, fsync the directory) *before* the
service replies, so an interrupted write - an exception, a panic, a power cut -
leaves the previous image intact and every acknowledged write readable after a
reboot.

Calls (types as TF-M's ``tfm_its_defs.h``), all through the static handle:

=============  ========================================  ==================
type           in-vectors                                out-vectors
=============  ========================================  ==================
ITS_SET 1001   uid (8 bytes LE), data, flags (4 bytes)   -
ITS_GET 1002   uid, offset (4 bytes, optional)           data
ITS_INFO 1003  uid                                       size, flags (4+4)
ITS_REMOVE     uid                                       -
1004
=============  ========================================  ==================
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

from psaspm.psa import (
    PSA_ERROR_DOES_NOT_EXIST,
    PSA_ERROR_INSUFFICIENT_STORAGE,
    PSA_ERROR_INVALID_ARGUMENT,
    PSA_ERROR_NOT_PERMITTED,
    PSA_ERROR_NOT_SUPPORTED,
    PSA_ERROR_STORAGE_FAILURE,
    PSA_SUCCESS,
    psa_msg_t,
    psa_read,
    psa_write,
)

ITS_SET = 1001
ITS_GET = 1002
ITS_INFO = 1003
ITS_REMOVE = 1004
FLAG_WRITE_ONCE = 1  # PSA_STORAGE_FLAG_WRITE_ONCE
MAX_ASSET_SIZE = 4096
MAX_ASSETS = 32
MAGIC = b"PSAITS01"
ENV = "PSASPM_DEMO_FLASH"

Key = tuple[int, int]  # (client id, uid): each client has its own assets, as in TF-M
ASSETS: dict[Key, tuple[int, bytes]] = {}  # -> (flags, data); fresh at every boot


def flash_path() -> Path:
    """The flash image: ``$PSASPM_DEMO_FLASH``, else this user's own (never one file that
    every user of the machine shares)."""
    path = os.environ.get(ENV)
    if path:
        return Path(path)
    cache = os.environ.get("PSASPM_CACHE")
    if cache:
        return Path(cache) / "demo" / "its_flash.img"
    home = Path(os.path.expanduser("~"))
    if home.is_dir() and os.access(home, os.W_OK):
        return home / ".cache" / "psaspm" / "demo" / "its_flash.img"
    return Path(tempfile.gettempdir()) / f"psaspm-demo-{os.getuid()}" / "its_flash.img"


def encode(assets: dict[Key, tuple[int, bytes]]) -> bytes:
    body = bytearray(MAGIC)
    body += struct.pack("<I", len(assets))
    for key in sorted(assets):
        flags, data = assets[key]
        body += struct.pack("<iQII", *key, flags, len(data)) + data
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


def decode(image: bytes) -> dict[Key, tuple[int, bytes]]:
    """The assets in an image; ValueError if it is not a complete, intact image."""
    if len(image) < len(MAGIC) + 8 or not image.startswith(MAGIC):
        raise ValueError("not a flash image")
    body, (crc,) = image[:-4], struct.unpack("<I", image[-4:])
    if zlib.crc32(body) != crc:
        raise ValueError("flash image checksum mismatch")
    (count,) = struct.unpack_from("<I", body, len(MAGIC))
    pos = len(MAGIC) + 4
    assets: dict[Key, tuple[int, bytes]] = {}
    for _ in range(count):
        client, uid, flags, size = struct.unpack_from("<iQII", body, pos)
        pos += struct.calcsize("<iQII")
        assets[client, uid] = (flags, bytes(body[pos : pos + size]))
        pos += size
    return assets


def store(assets: dict[Key, tuple[int, bytes]]) -> None:
    """Replace the flash image atomically: the old image or the new, never a mix."""
    path = flash_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(encode(assets))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # also a panic unwinding through here: drop the partial file
        Path(tmp).unlink(missing_ok=True)
        raise
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def its_init() -> int:
    """Mount the flash image: read it, and clean temporary files a crash left behind."""
    path = flash_path()
    ASSETS.clear()
    if path.parent.is_dir():
        for stale in path.parent.glob(path.name + ".*.tmp"):
            stale.unlink(missing_ok=True)
    if path.exists():
        try:
            ASSETS.update(decode(path.read_bytes()))
        except (OSError, ValueError):
            return PSA_ERROR_STORAGE_FAILURE  # a corrupt image: entry_init fails, TF-M panics
    return PSA_SUCCESS


def _uid(msg: psa_msg_t) -> int | None:
    if msg.in_size[0] != 8:
        return None
    (uid,) = struct.unpack("<Q", psa_read(msg.handle, 0, 8))
    return uid if uid != 0 else None  # uid 0 is invalid in the PSA storage API


def _set(msg: psa_msg_t, key: Key) -> int:
    data = psa_read(msg.handle, 1, msg.in_size[1])
    flags = 0
    if msg.in_size[2] == 4:
        (flags,) = struct.unpack("<I", psa_read(msg.handle, 2, 4))
    if len(data) > MAX_ASSET_SIZE or (key not in ASSETS and len(ASSETS) >= MAX_ASSETS):
        return PSA_ERROR_INSUFFICIENT_STORAGE
    old = ASSETS.get(key)
    if old is not None and old[0] & FLAG_WRITE_ONCE:
        return PSA_ERROR_NOT_PERMITTED
    updated = dict(ASSETS)
    updated[key] = (flags, data)
    try:
        store(updated)
    except OSError:
        return PSA_ERROR_STORAGE_FAILURE
    ASSETS[key] = (flags, data)  # committed: the reply acknowledges what is on flash
    return PSA_SUCCESS


def _remove(key: Key) -> int:
    old = ASSETS.get(key)
    if old is None:
        return PSA_ERROR_DOES_NOT_EXIST
    if old[0] & FLAG_WRITE_ONCE:
        return PSA_ERROR_NOT_PERMITTED
    updated = dict(ASSETS)
    del updated[key]
    try:
        store(updated)
    except OSError:
        return PSA_ERROR_STORAGE_FAILURE
    del ASSETS[key]
    return PSA_SUCCESS


def demo_its_sfn(msg: psa_msg_t) -> int:
    uid = _uid(msg)
    if uid is None:
        return PSA_ERROR_INVALID_ARGUMENT
    key = (msg.client_id, uid)
    if msg.type == ITS_SET:
        return _set(msg, key)
    if msg.type == ITS_REMOVE:
        return _remove(key)
    asset = ASSETS.get(key)
    if msg.type == ITS_GET:
        if asset is None:
            return PSA_ERROR_DOES_NOT_EXIST
        offset = 0
        if msg.in_size[1] == 4:
            (offset,) = struct.unpack("<I", psa_read(msg.handle, 1, 4))
        data = asset[1]
        if offset > len(data):
            return PSA_ERROR_INVALID_ARGUMENT
        psa_write(msg.handle, 0, data[offset : offset + msg.out_size[0]])
        return PSA_SUCCESS
    if msg.type == ITS_INFO:
        if asset is None:
            return PSA_ERROR_DOES_NOT_EXIST
        psa_write(msg.handle, 0, struct.pack("<II", len(asset[1]), asset[0]))
        return PSA_SUCCESS
    return PSA_ERROR_NOT_SUPPORTED
