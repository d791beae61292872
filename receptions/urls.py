"""URL helpers shared by views."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, request
from werkzeug.routing import MapAdapter

_HOST_NAME = re.compile(r"[a-z0-9.-]+")


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


def public_url_problem(url: str | None) -> str | None:
    """What is wrong with PUBLIC_URL as the base of the links sent to people, or None."""
    if not url:
        return "must be set to the site's public address"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an http:// or https:// address with a host"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "must be only scheme, host and path"
    return None


def public_url(endpoint: str, **values: Any) -> str:
    """The absolute address of `endpoint` on the site's public address (PUBLIC_URL), for links
    that leave the site (messages, invitations): the same inside a request, whatever its Host
    header, and outside one (the hourly jobs, an RQ worker)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    base = app.config["PUBLIC_URL"]
    kept = app.extensions.get("public_url")
    if kept is None or kept[0] != base:
        parts = urlsplit(base)
        adapter = app.url_map.bind(
            parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme
        )
        kept = app.extensions["public_url"] = (base, adapter)
    adapter: MapAdapter = kept[1]
    return adapter.build(endpoint, values, force_external=True)


def whole_number(text: str | None) -> int | None:
    """`text` as a number of at most nine ASCII digits (an id, a page, a version), or None.

    isascii: str.isdigit() also accepts "²" and "٣", which int() refuses (a 500) or reads as 3;
    ten digits and more overflow the database's integer columns.
    """
    text = text or ""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def int_arg(args: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """A positive integer query argument, or `default` when absent or malformed."""
    value = whole_number(args.get(name))
    return default if value is None else value


def calendar_uid_domain() -> str:
    """The domain in the UIDs of calendar events (`booking-ATY-7K3M9Q@ashyq-esik.kz`), which a
    calendar uses to recognise an event it already holds: it must not change with the name the
    site was reached by, or the same meeting is added twice.

    CALENDAR_UID_DOMAIN when set (a site reached by several names sets it); else the request's
    host name, in lower case, without its port, a leading "www." and a trailing dot; "localhost"
    for an address that is not a name (an IPv6 literal such as [::1], whose colons a UID cannot
    hold).
    """
    configured = current_app.config.get("CALENDAR_UID_DOMAIN")
    if configured:
        return str(configured)
    host = request.host.lower()
    if host.count(":") == 1:  # name:port (an IPv6 literal has more colons)
        host = host.partition(":")[0]
    host = host.removeprefix("www.").rstrip(".")
    return host if _HOST_NAME.fullmatch(host) else "localhost"
