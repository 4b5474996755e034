"""Server addresses, as ``psaspm serve --listen`` and ``psaspm.remote.connect`` take them.

``unix:PATH`` (also a bare path) or ``tcp:HOST:PORT``.  Pure parsing: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from psaspm.errors import ConfigError

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class Address:
    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.kind == "unix" else f"tcp:{self.host}:{self.port}"


def parse_address(text: str, allow_remote: bool = False) -> Address:
    """``unix:PATH`` (also a bare path) or ``tcp:HOST:PORT``; TCP is loopback-only
    unless ``allow_remote``.  A bad address is a ConfigError saying what is wrong."""
    if text.startswith("tcp:"):
        host, sep, port = text[4:].rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port:
            raise ConfigError(f"address {text!r}: expected tcp:HOST:PORT")
        if not port.isdigit():
            raise ConfigError(f"address {text!r}: port {port!r} is not a number (0..65535)")
        if int(port) > 65535:
            raise ConfigError(f"address {text!r}: port {int(port)} is out of range (0..65535)")
        if host not in _LOOPBACK and not allow_remote:
            raise ConfigError(
                f"address {text!r}: {host} is not a loopback address; the mailbox has no "
                "authentication, so listening beyond this machine needs --allow-remote"
            )
        return Address("tcp", host=host, port=int(port))
    path = text.removeprefix("unix:")
    if not path:
        raise ConfigError(f"address {text!r}: expected unix:PATH")
    return Address("unix", path=path)


__all__ = ["Address", "parse_address"]
