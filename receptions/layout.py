"""The page header, kept as rendered for visitors who are not signed in.

Every page prints the same header: the brand, the language switcher and the main navigation. For
a visitor who is not signed in it differs only by language and by the page the switcher returns
to, so it is rendered once per language (and application root) with a marker where that page
goes, and each request puts its own page in. A signed-in member of staff gets it rendered for
them (their name, their role's links, the sign-out form's token).
"""

from __future__ import annotations

import functools
from typing import Any

from flask import render_template, request, url_for
from flask_login import current_user
from jinja2 import pass_context
from markupsafe import Markup, escape

from .i18n import current_language

# What `next` is while the kept header is rendered: letters only, so that url_for and the
# template's escaping print it as it is and it can be found again.
_NEXT_MARKER = "ASHYQNEXTPAGE"


def request_path() -> str:
    """The page being shown, as the language switcher sends the visitor back to it."""
    return request.full_path.rstrip("?")


def _render(*, signed_in: bool, next_path: str) -> str:
    return render_template("_header.html", signed_in=signed_in, next_path=next_path).strip()


@pass_context
def site_header(context: Any) -> Markup:
    """The header for this request (`plain_page`, set by the 5xx page, leaves the visitor's
    account out of it: such a page reads nothing more than it must)."""
    if not context.get("plain_page") and current_user.is_authenticated:
        return Markup(_render(signed_in=True, next_path=request_path()))  # noqa: S704
    language = current_language()
    kept = _visitors_header(language, request.script_root)
    # The switcher's links differ by language only in their path: their query string, where
    # `next` goes, is the same for all of them, encoded by url_for as the template does.
    query = url_for("public.set_language", code=language, next=request_path()).partition("?")[2]
    return Markup(kept.replace(f"next={_NEXT_MARKER}", str(escape(query))))  # noqa: S704


# Languages × application roots; more than that is someone making up roots.
@functools.lru_cache(maxsize=64)
def _visitors_header(language: str, script_root: str) -> str:
    # Rendered in the request that asked for it, whose language and root these are.
    return _render(signed_in=False, next_path=_NEXT_MARKER)
