"""Every catalogue is complete, free of fuzzy entries, and compiled from its current source."""

from __future__ import annotations

import pytest

from receptions.i18n.catalogues import catalogue_path, problems


@pytest.mark.parametrize("language", ["kk", "ru", "en"])
def test_catalogue_has_no_untranslated_or_fuzzy_entries(language):
    assert problems(language) == []


@pytest.mark.parametrize("language", ["kk", "ru", "en"])
def test_compiled_catalogue_is_not_older_than_its_source(language):
    po = catalogue_path(language)
    mo = po.with_suffix(".mo")
    assert mo.exists(), "run `make translations`"
    assert mo.stat().st_mtime >= po.stat().st_mtime, "run `make translations`"


def test_template_strings_are_all_in_the_template():
    """A string added to code or a template but not extracted would show in English only."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "messages.pot"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "babel.messages.frontend",
                "extract",
                "-F",
                "babel.cfg",
                "-k",
                "_l",
                "-k",
                "lazy_gettext",
                "-k",
                "ngettext:1,2",
                "-o",
                str(out),
                ".",
            ],
            cwd=root,
            check=True,
            capture_output=True,
        )
        with out.open("rb") as handle:
            extracted = {
                m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id
            }
    with catalogue_path("kk").open("rb") as handle:
        translated = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    missing = sorted(extracted - translated)
    assert missing == [], f"run `make i18n` and translate: {missing[:10]}"
