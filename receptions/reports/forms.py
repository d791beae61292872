"""The report pages' period filter: a month, or a range of months, read from the query string."""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict
from wtforms import StringField
from wtforms.widgets import MonthInput

from ..forms import Form
from .scope import BadPeriod, Period, current_month

MONTH_PATTERN = {"pattern": "[0-9]{4}-[0-9]{2}", "min": "2000-01"}


class PeriodForm(Form):
    """Shown on every report page with the figures it filters; never sent by POST."""

    class Meta:
        csrf = False

    month = StringField(_l("Month"), widget=MonthInput(), render_kw=MONTH_PATTERN)
    month_from = StringField(_l("From"), name="from", widget=MonthInput(), render_kw=MONTH_PATTERN)
    month_to = StringField(_l("To"), name="to", widget=MonthInput(), render_kw=MONTH_PATTERN)

    def _latest(self, today: date) -> PeriodForm:
        """No month after the current one can be picked (browsers with a month picker)."""
        for field in self:
            field.render_kw = {**MONTH_PATTERN, "max": current_month(today)}
        return self


def period_form(period: Period, today: date) -> PeriodForm:
    """The form showing `period`: its month, or the first and last of its range."""
    single = period.months == 1
    return PeriodForm(
        formdata=None,
        data={
            "month": period.first if single else "",
            "month_from": "" if single else period.first,
            "month_to": "" if single else period.last,
        },
    )._latest(today)


def refused_form(args: MultiDict[str, str], refusal: BadPeriod, today: date) -> PeriodForm:
    """The form as it was sent, with the refusal's message at the field it is about."""
    form = PeriodForm(formdata=args)._latest(today)
    field = {"month": form.month, "from": form.month_from, "to": form.month_to}[refusal.field]
    field.errors = [refusal.user_message]
    return form
