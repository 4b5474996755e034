"""Build configuration: TF-M's ``-c`` config headers, conditional flags, backend and isolation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from psaspm.errors import ConfigError

BACKENDS = ("ipc", "sfn")
ISOLATION_LEVELS = (1, 2, 3)


def parse_config_header(path: str | Path) -> dict[str, str]:
    """The ``#define NAME VALUE`` lines of a C header, as TF-M's tool reads them.

    Only lines that begin with ``#define`` count; a bare ``#define NAME`` maps
    NAME to ``""`` (which a conditional reads as off).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config header: {exc}") from None
    defines: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split(maxsplit=2)
        if len(words) < 2 or words[0] != "#define":
            continue
        defines[words[1]] = words[2].strip() if len(words) == 3 else ""
    return defines


def check_backend(backend: object) -> str:
    """The backend as ``"ipc"`` or ``"sfn"``; anything else is a ConfigError."""
    if isinstance(backend, str) and backend.lower() in BACKENDS:
        return backend.lower()
    raise ConfigError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")


def check_isolation(isolation: object) -> int:
    """The isolation level 1, 2 or 3; anything else is a ConfigError."""
    if (
        isinstance(isolation, int)
        and not isinstance(isolation, bool)
        and isolation in ISOLATION_LEVELS
    ):
        return isolation
    raise ConfigError(f"isolation level {isolation!r} is not 1, 2 or 3")


def backend_from_config(config: Mapping[str, object], default: str) -> str:
    """``CONFIG_TFM_SPM_BACKEND`` from a config header when present, else ``default``."""
    value = config.get("CONFIG_TFM_SPM_BACKEND")
    return check_backend(value) if value is not None else default


def isolation_from_config(config: Mapping[str, object], default: int) -> int:
    """``TFM_ISOLATION_LEVEL`` from a config header when present, else ``default``."""
    value = config.get("TFM_ISOLATION_LEVEL")
    if value is None:
        return default
    try:
        return check_isolation(int(str(value).strip().rstrip("uUlL"), 0))
    except ValueError:
        raise ConfigError(f"TFM_ISOLATION_LEVEL {value!r} is not 1, 2 or 3") from None
