"""URL helpers shared by views."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after sign-in or a language switch."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None  # browsers drop tabs and newlines ("/\t/x" is "//x"); headers refuse them
    return target


def int_arg(args: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """A positive integer query argument, or `default` when absent or malformed."""
    value = args.get(name, "")
    # isascii: str.isdigit() also accepts "¹" and "٣", which int() refuses or reads differently.
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else default
