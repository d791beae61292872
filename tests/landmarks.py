"""Landmarks and ids of a rendered page, read from its HTML as assistive technology names them."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
LANDMARK_ROLES = {
    "banner",
    "complementary",
    "contentinfo",
    "form",
    "main",
    "navigation",
    "region",
    "search",
}
IMPLICIT_ROLES = {
    "main": "main",
    "nav": "navigation",
    "aside": "complementary",
    "header": "banner",
    "footer": "contentinfo",
}
NAMED_ONLY = {"section": "region", "form": "form"}  # landmarks only when they have a name


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.text: dict[str, list[str]] = {}
        self.open: list[tuple[str, str | None]] = []
        self.elements: list[tuple[str, dict[str, str | None], bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        ident = found.get("id")
        if ident:
            self.ids.append(ident)
            self.text.setdefault(ident, [])
        # header and footer are banner and contentinfo only outside main, section, article, aside.
        nested = any(
            name in ("main", "section", "article", "aside", "nav") for name, _ in self.open
        )
        self.elements.append((tag, found, nested))
        if tag not in VOID:
            self.open.append((tag, ident))

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            name, _ = self.open.pop()
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self.open:
            if ident:
                self.text[ident].append(data)


def _role(tag: str, attrs: dict[str, str | None], nested: bool, named: bool) -> str | None:
    role = (attrs.get("role") or "").strip()
    if role:
        return role if role in LANDMARK_ROLES else None
    if tag in ("header", "footer") and nested:
        return None
    if tag in IMPLICIT_ROLES:
        return IMPLICIT_ROLES[tag]
    return NAMED_ONLY.get(tag) if named else None


def read(html: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(role, accessible name) of every landmark, and every id, in document order."""
    page = _Page()
    page.feed(html)

    def name_of(attrs: dict[str, str | None]) -> str:
        if attrs.get("aria-labelledby"):
            parts = (
                " ".join("".join(page.text.get(ident, [])).split())
                for ident in (attrs["aria-labelledby"] or "").split()
            )
            return " ".join(part for part in parts if part)
        return " ".join((attrs.get("aria-label") or attrs.get("title") or "").split())

    landmarks = []
    for tag, attrs, nested in page.elements:
        name = name_of(attrs)
        role = _role(tag, attrs, nested, bool(name))
        if role is not None:
            landmarks.append((role, name))
    return landmarks, page.ids


def repeated(items: list) -> list:  # type: ignore[type-arg]
    """What stands more than once in `items`."""
    return [item for item, count in Counter(items).items() if count > 1]
