"""Reading one YAML or JSON document, turning every failure into a ManifestError."""

from __future__ import annotations

from pathlib import Path

import yaml

from psaspm.errors import ManifestError


def read_document(path: Path) -> object:
    """The document in ``path``, read as TF-M does (``yaml.safe_load``; JSON is YAML).

    A missing or unreadable file, or malformed YAML, is a ManifestError that
    names the file (and, for YAML, the line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        reason = exc.problem or exc.context or "malformed YAML"
        raise ManifestError(f"{path}: {where}: malformed YAML: {reason}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: malformed YAML: {exc}") from None
