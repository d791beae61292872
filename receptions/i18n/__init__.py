"""Language choice, localised model fields and Babel formatting shared by every feature."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import flask_babel
from babel import Locale
from babel.dates import format_datetime, format_skeleton
from flask import current_app, g, has_request_context, request, session
from flask_babel import get_locale

# A moment as the pages write it, in the reader's language and the site's time zone: "8 декабря
# 2026, 18:33", "8 желтоқсан 2026, 18:33", "8 December 2026, 18:33" (Babel's default "medium"
# format abbreviates the month and adds seconds: "8 дек. 2026 г., 18:33:00").
MOMENT_PATTERN = "d MMMM y, HH:mm"

# A field missing in the reader's language is read in the next one that has it. English readers
# get Russian before Kazakh: it is what a visitor without Kazakh most likely reads, and what
# signs, maps and taxis in Kazakhstan use. Institutions have no English address at all
# (`address_kk`, `address_ru`; no `address_en` column), so English pages and messages show the
# Russian address, else the Kazakh one: intended, not a gap to fill with a migration.
FALLBACK_ORDER = {"kk": ("kk", "ru", "en"), "ru": ("ru", "kk", "en"), "en": ("en", "ru", "kk")}
LANGUAGE_NAMES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
COOKIE = "lang"


def select_locale() -> str:
    """Explicit choice (session or cookie) first, then Accept-Language, then Kazakh."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI commands, workers, benchmarks
        return str(current_app.config["BABEL_DEFAULT_LOCALE"])
    chosen = getattr(g, "forced_locale", None) or session.get(COOKIE) or request.cookies.get(COOKIE)
    if chosen in languages:
        return str(chosen)
    return (
        request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]
    )


def current_language() -> str:
    return str(get_locale() or "kk").split("_")[0]


def month_label(month: str, *, short: bool = False) -> str:
    """A "YYYY-MM" month as the reader's language writes it: "2026 ж. қараша", "ноябрь 2026 г.",
    "November 2026" (CLDR's year-and-month skeleton; `short`: its abbreviated month, for axes)."""
    year, number = month.split("-")
    return format_skeleton(
        "yMMM" if short else "yMMMM", date(int(year), int(number), 1), locale=current_language()
    )


def share_percent(value: float) -> str:
    """A share as per cent to one decimal in the reader's number format ("18.2%", "18,2 %"),
    the precision the CSV and XLSX give, so a figure reads the same on a page and in a file."""
    language = current_language()
    pattern = _one_decimal_percent_pattern(language)
    return flask_babel.format_percent(value, pattern)


@functools.cache
def _one_decimal_percent_pattern(language: str) -> str:
    """The locale's own percent pattern (its spacing and sign) with one decimal place."""
    pattern = Locale.parse(language).percent_formats[None].pattern
    whole, _, rest = pattern.rpartition("0")
    return f"{whole}0.0{rest}"


def local_moment(moment: datetime, pattern: str, timezone: str) -> str:
    """A moment as the reader's language writes it (`pattern`), in the local time of `timezone`
    (a region's zone) rather than the site's default one."""
    return format_datetime(moment, pattern, tzinfo=ZoneInfo(timezone), locale=current_language())


def localized(obj: Any, field: str, language: str | None = None) -> str:
    """The `field_<lang>` attribute in the reader's language, falling back to the others."""
    for lang in FALLBACK_ORDER.get(language or current_language(), FALLBACK_ORDER["kk"]):
        value = getattr(obj, f"{field}_{lang}", None)
        if value:
            return str(value)
    return ""


_CATALOGUES: dict[Any, Any] = {}


def translations() -> Any:
    """The catalogue of the language in use (forced ones included): flask_babel looks the locale
    and then its catalogue up again for every string, and a page asks for dozens."""
    locale = get_locale()
    catalogue = _CATALOGUES.get(locale)
    if catalogue is None:
        catalogue = flask_babel.get_translations()
        if locale is not None:
            _CATALOGUES[locale] = catalogue
    return catalogue


def install_template_gettext(app: Any) -> None:
    """Templates' _() and friends through `translations`."""
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: translations().ugettext(s),
        ngettext=lambda s, p, n: translations().ungettext(s, p, n),
        pgettext=lambda c, s: translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: translations().unpgettext(c, s, p, n),
        newstyle=True,
    )


_MOMENT_FORMATTERS = {
    "date": flask_babel.format_date,
    "datetime": flask_babel.format_datetime,
    "time": flask_babel.format_time,
}


@functools.lru_cache(maxsize=4096)
def _format_moment(kind: str, value: date, pattern: str, locale: str, timezone: str) -> str:
    # Only the key's parts change what Babel prints; the request's locale and timezone are
    # the ones named in the key (the caller read them just now).
    return str(_MOMENT_FORMATTERS[kind](value, pattern))


def moment_filter(kind: str) -> Callable[..., str]:
    """A template filter that formats dates or times as flask_babel's `format_<kind>` does, once
    per value, pattern, language and timezone: a page of free times formats the same few dozen
    moments, and Babel takes longer than the rest of such a page's row."""
    formatter = _MOMENT_FORMATTERS[kind]

    def format_moment(value: Any, pattern: str | None = None) -> str:
        if pattern is None or not isinstance(value, date):
            return str(formatter(value, pattern))
        return _format_moment(
            kind, value, pattern, str(get_locale()), str(flask_babel.get_timezone())
        )

    return format_moment
