"""Checks and upkeep of the gettext catalogues (used by `make i18n` and the tests)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po, write_po

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
SOURCE_LANGUAGE = "en"


def catalogue_path(language: str) -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"


def fill_source_language(language: str = SOURCE_LANGUAGE) -> int:
    """Copy msgid to msgstr in the source-language catalogue; returns how many were filled."""
    path = catalogue_path(language)
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=language)
    filled = 0
    for message in catalogue:
        if not message.id:
            continue
        if message.pluralizable:
            if not all(message.string):
                message.string = tuple(message.id)  # type: ignore[assignment]
                filled += 1
        elif not message.string:
            message.string = message.id
            filled += 1
        if message.fuzzy:
            message.flags.discard("fuzzy")
    with path.open("wb") as handle:
        write_po(handle, catalogue, width=100)
    return filled


def problems(language: str) -> list[str]:
    """Untranslated, fuzzy or obsolete entries of one catalogue, as readable lines."""
    path = catalogue_path(language)
    if not path.exists():
        return [f"{path} is missing"]
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=language)
    found = []
    for message in catalogue:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            found.append(f"{language}: untranslated: {message.id!r}")
        if message.fuzzy:
            found.append(f"{language}: fuzzy: {message.id!r}")
    return found


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["fill-source"]:
        print(f"filled {fill_source_language()} source-language entries")
    elif sys.argv[1:2] == ["check"]:
        issues = [line for lang in sys.argv[2:] or ["kk", "ru", "en"] for line in problems(lang)]
        print("\n".join(issues) or "catalogues complete")
        sys.exit(1 if issues else 0)
    else:
        sys.exit("usage: python -m receptions.i18n.catalogues fill-source | check [LANG ...]")
