"""Institution create/edit form and the public search form."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, EmailField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

from ..forms import Form
from .models import INSTITUTION_TYPE_LABELS


def type_choices() -> list[tuple[str, str]]:
    return [(t.value, str(label)) for t, label in INSTITUTION_TYPE_LABELS.items()]


class InstitutionForm(Form):
    district_id = SelectField(_l("District"), coerce=int, validators=[DataRequired()])
    type = SelectField(_l("Type"), validators=[DataRequired()])
    name_kk = StringField(_l("Name in Kazakh"), validators=[DataRequired(), Length(max=200)])
    name_ru = StringField(_l("Name in Russian"), validators=[DataRequired(), Length(max=200)])
    name_en = StringField(_l("Name in English"), validators=[Optional(), Length(max=200)])
    address_kk = StringField(_l("Address in Kazakh"), validators=[Optional(), Length(max=300)])
    address_ru = StringField(_l("Address in Russian"), validators=[Optional(), Length(max=300)])
    head_name = StringField(_l("Head's full name"), validators=[Optional(), Length(max=200)])
    head_position_kk = StringField(
        _l("Head's position in Kazakh"), validators=[Optional(), Length(max=200)]
    )
    head_position_ru = StringField(
        _l("Head's position in Russian"), validators=[Optional(), Length(max=200)]
    )
    head_position_en = StringField(
        _l("Head's position in English"), validators=[Optional(), Length(max=200)]
    )
    accessibility_kk = TextAreaField(
        _l("Accessibility notes in Kazakh"), validators=[Optional(), Length(max=2000)]
    )
    accessibility_ru = TextAreaField(
        _l("Accessibility notes in Russian"), validators=[Optional(), Length(max=2000)]
    )
    accessibility_en = TextAreaField(
        _l("Accessibility notes in English"), validators=[Optional(), Length(max=2000)]
    )
    phone = StringField(
        _l("Phone"),
        validators=[
            Optional(),
            Length(max=40),
            Regexp(r"^[0-9+()\- ]+$", message=_l("Use digits, spaces, +, - and brackets only.")),
        ],
    )
    email = EmailField(_l("E-mail"), validators=[Optional(), Email(), Length(max=200)])
    active = BooleanField(_l("Shown to the public"), default=True)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.type.choices = type_choices()

    def values(self) -> dict[str, object]:
        return {
            name: field.data if field.data is not None else ""
            for name, field in self._fields.items()
            if name not in ("district_id", "csrf_token")
        }
