"""Model names, alias names and `NAME[@REF]` references as users write them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from maas.errors import InvalidInput

NAME_PATTERN = r"[a-z0-9][a-z0-9._-]*"
NAME_MAX_LENGTH = 128  # long enough for any real name, short enough for a path component
LATEST = "latest"

_NAME_RE = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class ModelRef:
    """A parsed `NAME[@REF]`: `ref` is a version number, an alias or `"latest"`."""

    name: str
    ref: str | int = LATEST

    def __str__(self) -> str:
        return f"{self.name}@{self.ref}"


def check_name(name: str) -> str:
    """Return `name` if it is a valid model name, else raise InvalidInput saying why."""
    if not _NAME_RE.fullmatch(name) or len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(
            f"invalid model name {name!r}: use lowercase letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit, at most {NAME_MAX_LENGTH} characters"
        )
    return name


def check_alias(alias: str) -> str:
    """Return `alias` if it can name an alias (a model-name-like word, not a number or "latest")."""
    if not _NAME_RE.fullmatch(alias) or len(alias) > NAME_MAX_LENGTH:
        raise InvalidInput(
            f"invalid alias {alias!r}: use lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    if alias.isdigit() or alias == LATEST:
        raise InvalidInput(f"invalid alias {alias!r}: it would be read as a version reference")
    return alias


def normalize_ref(ref: str | int) -> str | int:
    """A version number as int, anything else (alias, "latest") as a checked string."""
    if isinstance(ref, int):
        if ref < 1:
            raise InvalidInput(f"invalid version {ref}: versions start at 1")
        return ref
    text = ref.strip()
    if text.isdigit():
        return normalize_ref(int(text))
    if text == LATEST:
        return LATEST
    return check_alias(text)


def parse_ref(text: str) -> ModelRef:
    """Parse `NAME`, `NAME@3`, `NAME@production` or `NAME@latest`.

    Raises:
        InvalidInput: the name or the reference is malformed.
    """
    name, sep, ref = text.strip().partition("@")
    if sep and not ref:
        raise InvalidInput(f"invalid reference {text!r}: nothing after '@' (try {name}@latest)")
    return ModelRef(check_name(name), normalize_ref(ref) if sep else LATEST)


def describe_versions(versions: Iterable[int]) -> str:
    """Compact ranges for messages: [1, 2, 3, 5] -> "1-3, 5"; nothing -> "none"."""
    numbers = sorted(set(versions))
    if not numbers:
        return "none"
    parts: list[str] = []
    start = prev = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if number is not None:
            start = prev = number
    return ", ".join(parts)
