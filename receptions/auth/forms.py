"""Sign-in, set-password and invitation forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional

from ..forms import Form
from .models import Role
from .services import MIN_PASSWORD_LENGTH

LOCALE_CHOICES = [("kk", "Қазақша"), ("ru", "Русский"), ("en", "English")]


class SignInForm(Form):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=200)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


class SetPasswordForm(Form):
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=200)],
        description=_l("At least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
    )
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords do not match."))],
    )


def _optional_id(value: object) -> int | None:
    return int(value) if value not in (None, "", "None") else None  # type: ignore[call-overload]


class InviteForm(Form):
    full_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=200)])
    role = SelectField(_l("Role"), validators=[DataRequired()])
    locale = SelectField(_l("Language"), choices=LOCALE_CHOICES, default="kk")
    institution_id = SelectField(_l("Institution"), coerce=_optional_id, validators=[Optional()])
    district_id = SelectField(_l("District"), coerce=_optional_id, validators=[Optional()])
    region_id = SelectField(_l("Region"), coerce=_optional_id, validators=[Optional()])

    def set_role_choices(self, roles: tuple[Role, ...]) -> None:
        self.role.choices = [(role.value, role.label) for role in roles]


class UserEditForm(InviteForm):
    active = BooleanField(_l("Account is active"))
