"""The base of every form: Flask-WTF, with WTForms' own messages read once per process and its
standard widgets printed by `receptions.widgets`."""

from __future__ import annotations

from functools import cache
from typing import Any

from babel.support import NullTranslations, Translations
from flask import current_app
from flask_babel import get_locale
from flask_wtf import FlaskForm
from wtforms.i18n import messages_path
from wtforms.widgets.core import clean_key

from . import widgets
from .errors import InvalidEntry


@cache
def wtforms_messages(locale: str) -> NullTranslations:
    """WTForms' catalogue for one language. Flask-WTF itself reads and parses the .mo file again
    for every request that builds a form; the installed files do not change while we run."""
    return Translations.load(messages_path(), [locale], domain="wtforms")


class Form(FlaskForm):
    class Meta(FlaskForm.Meta):
        def get_translations(self, form: Any) -> Any:
            if not current_app.config.get("WTF_I18N_ENABLED", True):
                return super().get_translations(form)
            return wtforms_messages(str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"]))

        def render_field(self, field: Any, render_kw: dict[str, Any]) -> Any:
            # DefaultMeta.render_field, with the standard widgets built by receptions.widgets.
            params = {clean_key(key): value for key, value in render_kw.items()}
            if field.render_kw:
                params = {clean_key(key): value for key, value in field.render_kw.items()} | params
            html = widgets.render(field, params)
            return html if html is not None else field.widget(field, **params)


def show_refusal(form: FlaskForm, refusal: InvalidEntry) -> None:
    """Put a service's refusal next to the fields it is about, so that the form is shown again
    with what was typed; a refusal about a field the form does not have is raised as it is."""
    for name, message in refusal.problems.items():
        field = form._fields.get(name)
        if field is None:
            raise refusal
        field.errors = [*field.errors, message]
