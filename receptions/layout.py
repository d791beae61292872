"""The page header, and the busiest pages, kept as rendered for visitors who are not signed in.

Every page prints the same header: the brand, the language switcher and the main navigation. For
a visitor who is not signed in it differs only by language and by the page the switcher returns
to, so it is rendered once per language (and application root) with a marker where that page
goes, and each request puts its own page in. A signed-in member of staff gets it rendered for
them (their name, their role's links, the sign-out form's token).

`visitors_page` does the same for a whole page whose every input is named in its key, with
markers for what each request puts in (a form's tokens, say): a rush opens the booking form and
the "time just taken" page more than any other, and rendering them cost more than reading them.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from flask import g, render_template, request, session, url_for
from flask_login import current_user
from jinja2 import pass_context
from markupsafe import Markup, escape

from .i18n import current_language

# What `next` is while the kept header is rendered: letters only, so that url_for and the
# template's escaping print it as it is and it can be found again.
_NEXT_MARKER = "ASHYQNEXTPAGE"
_RETURN_MARKER = f"next={_NEXT_MARKER}"


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
    kept = _visitors_header(current_language(), request.script_root)
    if g.get(_KEEPING):  # a kept page puts the return path in itself (visitors_page)
        return Markup(kept)  # noqa: S704
    return Markup(_with_return_path(kept))  # noqa: S704


def _with_return_path(html: str) -> str:
    return html.replace(_RETURN_MARKER, _return_path())


def _return_path() -> str:
    # The switcher's links differ by language only in their path: their query string, where
    # `next` goes, is the same for all of them, encoded by url_for as the template does.
    query = url_for("public.set_language", code=current_language(), next=request_path())
    return str(escape(query.partition("?")[2]))


# Languages × application roots; more than that is someone making up roots.
@functools.lru_cache(maxsize=64)
def _visitors_header(language: str, script_root: str) -> str:
    # Rendered in the request that asked for it, whose language and root these are.
    return _render(signed_in=False, next_path=_NEXT_MARKER)


_KEEPING = "ashyq_keeping_page"
# Each kept page split at its markers: text, marker, text, ... (markers at the odd places).
_KEPT_PAGES: OrderedDict[tuple[Hashable, str, str], tuple[str, ...]] = OrderedDict()
_KEPT_LOCK = threading.Lock()  # threaded workers share the pages
KEPT_PAGES_MAX = 256


@functools.lru_cache(maxsize=16)
def _splitter(markers: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("(" + "|".join(re.escape(marker) for marker in markers) + ")")


def visitors_page(
    key: Hashable, render: Callable[[], str], fills: Mapping[str, str] | None = None
) -> str | None:
    """A page as a visitor who is not signed in sees it: `render()` once per `key`, language and
    application root, then kept (the most recently used `KEPT_PAGES_MAX`), with the language
    switcher's return path and `fills` (marker: text, escaped already) put in for each request.

    The kept page is split at its markers once, when it is kept, and each request's texts are
    joined in at those places: nothing a request puts in (its path, a token) is searched for
    markers again, so a marker in a query string stays text.

    `key` must name every input of the page that is not a marker, so that a kept page is the
    page `render()` would give now. None for a signed-in member of staff or a visitor with a
    message waiting to be shown: the caller renders those pages itself.
    """
    if current_user.is_authenticated or session.get("_flashes"):
        return None
    texts = {**(fills or {}), _RETURN_MARKER: ""}
    kept_key = (key, current_language(), request.script_root)
    with _KEPT_LOCK:
        pieces = _KEPT_PAGES.get(kept_key)
        if pieces is not None:
            _KEPT_PAGES.move_to_end(kept_key)
    if pieces is None:
        g.setdefault(_KEEPING, True)
        try:
            page = render()
        finally:
            g.pop(_KEEPING, None)
        pieces = tuple(_splitter(tuple(texts)).split(page))
        with _KEPT_LOCK:
            _KEPT_PAGES[kept_key] = pieces
            if len(_KEPT_PAGES) > KEPT_PAGES_MAX:
                _KEPT_PAGES.popitem(last=False)
    texts[_RETURN_MARKER] = _return_path()
    return "".join(texts[piece] if index % 2 else piece for index, piece in enumerate(pieces))
