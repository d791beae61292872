"""Language choice: Accept-Language first guess, explicit switch remembered, Kazakh fallback."""

from __future__ import annotations


def test_kazakh_is_the_fallback(client):
    page = client.get("/", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="kk">' in page


def test_accept_language_is_the_first_guess(client):
    assert '<html lang="ru">' in client.get(
        "/", headers={"Accept-Language": "ru-RU,ru;q=0.9"}
    ).get_data(as_text=True)
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "en-GB"}).get_data(
        as_text=True
    )


def test_switcher_remembers_the_choice_and_returns_to_the_page(client):
    response = client.get("/language/ru?next=/institutions?q=x")
    assert response.status_code == 302
    assert response.headers["Location"] == "/institutions?q=x"
    assert "lang=ru" in response.headers["Set-Cookie"]
    page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="ru">' in page


def test_switcher_refuses_unknown_languages_and_foreign_redirects(client):
    assert client.get("/language/de").status_code == 404
    response = client.get("/language/en?next=https://evil.example/")
    assert response.headers["Location"] == "/"
    response = client.get("/language/en?next=//evil.example/")
    assert response.headers["Location"] == "/"


def test_pages_are_translated(client):
    kk = client.get("/", headers={"Accept-Language": "kk"}).get_data(as_text=True)
    ru = client.get("/", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    en = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Skip to main content" in en
    assert "Skip to main content" not in kk and "Skip to main content" not in ru
    assert kk != ru


def test_templates_follow_the_language_in_use_forced_or_not(app):
    """Templates read catalogues through receptions.i18n.translations, kept per locale: a
    forced language (messages in the citizen's language) must still win, and end with it."""
    from flask import render_template_string
    from flask_babel import force_locale

    template = "{{ _('Book a meeting') }}"
    with app.test_request_context("/", headers={"Accept-Language": "kk"}):
        assert render_template_string(template) == "Кездесуге жазылу"
        with force_locale("ru"):
            assert render_template_string(template) == "Записаться на встречу"
            with force_locale("en"):
                assert render_template_string(template) == "Book a meeting"
        assert render_template_string(template) == "Кездесуге жазылу"


def test_date_filters_print_what_babel_prints_in_every_language(app):
    """The templates' date and time filters keep what they formatted per value, pattern,
    language and timezone: they must print exactly flask_babel's text, forced languages included,
    and never hand one language's text to another."""
    from datetime import UTC, date, datetime, timedelta, timezone

    import flask_babel
    from flask import render_template_string
    from flask_babel import force_locale

    moments = [
        datetime(2026, 3, 8, 4, 30, tzinfo=UTC),
        datetime(2026, 3, 8, 9, 30, tzinfo=timezone(timedelta(hours=5))),  # the same instant
        datetime(2026, 12, 31, 20, 15, tzinfo=UTC),  # the next day in Almaty
        datetime(2026, 12, 31, 20, 15),  # naive: UTC, as flask_babel reads it
        date(2026, 12, 16),
    ]
    cases = [
        ('{{ value|datetime("EEE, d MMMM") }}', flask_babel.format_datetime, "EEE, d MMMM"),
        ('{{ value|date("d MMMM y") }}', flask_babel.format_date, "d MMMM y"),
        ("{{ value|time_short }}", flask_babel.format_time, "HH:mm"),
        ("{{ value|datetime }}", flask_babel.format_datetime, None),
    ]
    with app.test_request_context("/", headers={"Accept-Language": "kk"}):
        printed = {}
        for language in ("kk", "ru", "en", "kk"):
            with force_locale(language):
                for template, babel_format, pattern in cases:
                    for value in moments:
                        plain_date = not isinstance(value, datetime)
                        if plain_date and babel_format is not flask_babel.format_date:
                            continue
                        for _ in range(2):  # formatted, then kept
                            text = render_template_string(template, value=value)
                            assert text == babel_format(value, pattern)
                        printed[language, template, value] = text
        assert printed["kk", cases[0][0], moments[0]] != printed["ru", cases[0][0], moments[0]]
        assert printed["ru", cases[0][0], moments[0]] == printed["ru", cases[0][0], moments[1]]
        assert printed["en", cases[1][0], moments[2]] == "1 January 2027"
