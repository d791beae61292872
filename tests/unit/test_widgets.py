"""receptions.widgets prints what WTForms' widgets print, for every field of every form here."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectFieldBase
from wtforms.meta import DefaultMeta

import receptions
from receptions import create_app, widgets
from receptions.forms import Form
from tests.conftest import app_settings

HOSTILE = "a\"b<c>&d'e"
RENDER_KWS: list[dict[str, Any]] = [
    {},
    {"aria-describedby": "x-hint x-error", "aria-invalid": "true", "autocomplete": "off"},
    {"required": True, "aria-required": "true", "class": "wide", "disabled": False},
    {"value": HOSTILE, "id": "other-id", "data-x": 3},
]


def _all_forms() -> list[type[Form]]:
    for module in pkgutil.walk_packages(receptions.__path__, "receptions."):
        importlib.import_module(module.name)
    found: list[type[Form]] = []
    pending = list(Form.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


FORMS = _all_forms()


@pytest.fixture(scope="module")
def app() -> Flask:
    return create_app(app_settings("sqlite://"))


def _formdata(form_class: type[Form]) -> MultiDict[str, str]:
    """Every field submitted with a value that needs escaping (and a second one for lists)."""
    data: MultiDict[str, str] = MultiDict()
    for name in dir(form_class):
        if not name.startswith("_"):
            data.add(name, HOSTILE)
            data.add(name, "2")
    return data


def _bound_fields(form_class: type[Form], formdata: MultiDict[str, str] | None) -> Iterator[Any]:
    form = form_class(formdata=formdata, meta={"csrf": False})
    for field in form:
        if isinstance(field, SelectFieldBase) and getattr(field, "choices", None) is None:
            field.choices = [(1, "Один <1>"), (2, "Two & two"), (3, "")]
        yield field


def test_every_form_of_the_project_is_checked() -> None:
    names = {cls.__name__ for cls in FORMS}
    assert {"BookingForm", "RescheduleForm", "SignInForm"} <= names, names
    assert len(FORMS) >= 20


@pytest.mark.parametrize("form_class", FORMS, ids=lambda cls: cls.__qualname__)
def test_same_markup_as_wtforms(app: Flask, form_class: type[Form]) -> None:
    checked = fallbacks = 0
    with app.test_request_context("/", headers={"Accept-Language": "kk"}):
        for formdata in (None, _formdata(form_class)):
            for field in _bound_fields(form_class, formdata):
                for render_kw in RENDER_KWS:
                    expected = str(field.widget(field, **render_kw))
                    ours = widgets.render(field, dict(render_kw))
                    if ours is None:
                        fallbacks += 1
                        continue
                    assert str(ours) == expected, (field.name, render_kw)
                    # And the form prints through it: field() goes via Form.Meta.render_field,
                    # which adds the field's own render_kw as WTForms' DefaultMeta does.
                    assert str(field(**render_kw)) == str(
                        DefaultMeta.render_field(field.meta, field, dict(render_kw))
                    )
                    checked += 1
    assert checked > 0
    assert fallbacks == 0, "a widget of this form is printed by WTForms: add it to widgets.py"


def test_an_unknown_widget_is_left_to_wtforms(app: Flask) -> None:
    from wtforms import StringField
    from wtforms.widgets import TextInput

    class Shout(TextInput):
        def __call__(self, field: Any, **kwargs: Any) -> str:
            return super().__call__(field, **kwargs).upper()

    class ShoutForm(Form):
        word = StringField("Word", widget=Shout())

    with app.test_request_context("/"):
        form = ShoutForm(formdata=MultiDict({"word": "hello"}), meta={"csrf": False})
        assert widgets.render(form.word, {}) is None
        assert 'VALUE="HELLO"' in str(form.word())


def test_attributes_escape_and_sort() -> None:
    assert widgets.attributes({"b": 'x"<', "a": True, "c": False, "data_y": 1}) == (
        'a b="x&#34;&lt;" data-y="1"'
    )
