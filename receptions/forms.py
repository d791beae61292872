"""The base of every form: Flask-WTF, with WTForms' own messages read once per process."""

from __future__ import annotations

from functools import cache
from typing import Any

from babel.support import NullTranslations, Translations
from flask import current_app
from flask_babel import get_locale
from flask_wtf import FlaskForm
from wtforms.i18n import messages_path


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
