"""Collecting every problem in a set of manifests before raising one ManifestError."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psaspm.errors import ManifestError

STRICTER = "psaspm is stricter than TF-M here"


@dataclass(frozen=True)
class Where:
    """Where a problem is: the file, and the partition once its name is known."""

    file: Path | str
    partition: str | None = None

    def named(self, partition: str | None) -> Where:
        return Where(self.file, partition)

    def message(self, field: str, detail: str) -> str:
        parts = [str(self.file)]
        if self.partition is not None:
            parts.append(f"partition {self.partition}")
        if field:
            parts.append(field)
        parts.append(detail)
        return ": ".join(parts)


class Problems:
    """An ordered, duplicate-free list of problem messages."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, message: str) -> None:
        line = " ".join(message.split())  # one problem, one line
        if line not in self._items:
            self._items.append(line)

    def at(self, where: Where, field: str, detail: str) -> None:
        self.add(where.message(field, detail))

    def extend(self, other: Problems) -> None:
        for message in other.items:
            self.add(message)

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def raise_if_any(self) -> None:
        if self._items:
            raise ManifestError(self._items[0], tuple(self._items))
