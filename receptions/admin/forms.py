"""Forms of the administrators' pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from ..clock import now as clock_now
from ..forms import Form
from ..reports.scope import REPORT_ZONE
from ..visits.services import DateOutOfRange, check_day_in_range
from .audit_log import AuditFilter, user_by_email

MAX_RECORD_ID = 2**31 - 1


def _day_in_range(_form: Form, field: DateField) -> None:
    if field.data is not None:
        try:
            check_day_in_range(field.data, clock_now().astimezone(REPORT_ZONE).date())
        except DateOutOfRange as error:
            raise ValidationError(error.user_message) from error


class AuditFilterForm(Form):
    """Read from the query string; every value is checked before it reaches a query."""

    class Meta:
        csrf = False

    action = StringField(_l("Action starts with"), validators=[Optional(), Length(max=60)])
    user = StringField(_l("User's e-mail"), validators=[Optional(), Length(max=254)])
    record_type = SelectField(_l("Record type"), validators=[Optional()])
    record_id = IntegerField(
        _l("Record number"), validators=[Optional(), NumberRange(1, MAX_RECORD_ID)]
    )
    date_from = DateField(_l("From"), validators=[Optional(), _day_in_range])
    date_to = DateField(_l("To"), validators=[Optional(), _day_in_range])
    user_id: int | None = None

    def validate_user(self, field: StringField) -> None:
        self.user_id = None
        if field.data and field.data.strip():
            user = user_by_email(field.data)
            if user is None:
                raise ValidationError(str(_l("There is no account with this e-mail.")))
            self.user_id = user.id

    def validate_date_to(self, field: DateField) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(str(_l("The end date cannot be before the start date.")))

    def filters(self) -> AuditFilter:
        return AuditFilter(
            action=(self.action.data or "").strip(),
            user_id=self.user_id,
            record_type=self.record_type.data or "",
            record_id=self.record_id.data,
            date_from=self.date_from.data,
            date_to=self.date_to.data,
        )
