"""Parsers for the scalar forms manifests use: C literals, identifiers, flags, client IDs."""

from __future__ import annotations

import re
from typing import TypeGuard

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_C_INT = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*")

FLAG_ON = frozenset({"1", "on", "true", "enabled"})
FLAG_OFF = frozenset({"0", "off", "false", "disabled", ""})

INT32_MIN = -(1 << 31)
UINT32_MAX = (1 << 32) - 1


def is_identifier(value: object) -> bool:
    """A C identifier (the names that become macros and symbols)."""
    return isinstance(value, str) and _IDENT.fullmatch(value) is not None


def is_int(value: object) -> TypeGuard[int]:
    """A YAML integer (``bool`` is not one, although Python says so)."""
    return isinstance(value, int) and not isinstance(value, bool)


def c_int(text: str) -> int | None:
    """The value of a decimal or hexadecimal C integer literal, or None."""
    match = _C_INT.fullmatch(text.strip())
    if match is None:
        return None
    sign, digits = match.groups()
    value = int(digits, 0) if digits.lower().startswith("0x") else int(digits, 10)
    return -value if sign == "-" else value


def int_or_literal(value: object) -> int | None:
    """An int, or a string holding a C integer literal (``"0x0000F080"``)."""
    if is_int(value):
        return value
    if isinstance(value, str):
        return c_int(value)
    return None


def flag_value(value: object) -> bool | None:
    """A configuration flag: True/False, or None when it is neither (TF-M's value sets)."""
    if isinstance(value, bool):
        return value
    if is_int(value):
        return {1: True, 0: False}.get(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in FLAG_ON:
            return True
        if lowered in FLAG_OFF:
            return False
    return None


def client_id(value: object) -> int | None:
    """A 32-bit negative client ID: ``"-0x0400ffff"`` or two's complement ``"0xfbff0001"``.

    Returns None when the value is not a negative 32-bit integer in either form.
    """
    number = int_or_literal(value)
    if number is None:
        return None
    if number > (1 << 31) - 1 and number <= UINT32_MAX:
        number -= 1 << 32
    if INT32_MIN <= number < 0:
        return number
    return None
