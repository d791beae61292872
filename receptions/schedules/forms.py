"""The schedule form (also used for a region's unified open-door day) and session cancellation."""

from __future__ import annotations

from datetime import date, time
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from scheduling import errors as codes
from scheduling.errors import SchedulingError
from scheduling.recurrence import Frequency, compose_rule, parse_rule

from ..forms import Form

WEEKDAYS = [
    ("0", _l("Monday")),
    ("1", _l("Tuesday")),
    ("2", _l("Wednesday")),
    ("3", _l("Thursday")),
    ("4", _l("Friday")),
    ("5", _l("Saturday")),
    ("6", _l("Sunday")),
]
ORDINALS = [
    ("1", _l("first")),
    ("2", _l("second")),
    ("3", _l("third")),
    ("4", _l("fourth")),
    ("-1", _l("last")),
    ("working", _l("first working")),
]

# One translated message per domain error code; a test checks that none is missing.
CODE_MESSAGES = {
    codes.INVALID_RRULE: _l("This repeat rule is not valid. Choose the days again."),
    codes.END_BEFORE_START: _l("The end time must be later than the start time."),
    codes.HOST_BUSY: _l(
        "The same person already receives citizens at this time in another schedule. "
        "Choose another time or pause the other schedule."
    ),
    codes.SLOT_NOT_POSITIVE: _l("The slot length must be at least one minute."),
    codes.SLOT_LONGER_THAN_SESSION: _l("A slot cannot be longer than the session itself."),
    codes.NO_SLOT_FITS: _l("No slot fits between the start, the end and the break."),
    codes.CAPACITY_NOT_POSITIVE: _l("The number of places must be at least 1."),
    codes.RECEPTION_CAPACITY_NOT_ONE: _l("A personal reception has exactly one citizen per slot."),
    codes.WALK_IN_NEGATIVE: _l("The number of walk-in places cannot be negative."),
    codes.WALK_IN_NOT_FOR_RECEPTION: _l("Walk-in places are for open-door days only."),
    codes.VALID_UNTIL_BEFORE_VALID_FROM: _l("The last date cannot be before the first date."),
    codes.BREAK_END_BEFORE_START: _l("The break must end after it starts."),
    codes.BREAK_OUTSIDE_SESSION: _l("The break must lie inside the session."),
    codes.BREAKS_OVERLAP: _l("Breaks must not overlap."),
    codes.UNKNOWN_TIMEZONE: _l("The region's time zone is not known."),
    codes.BOOKING_WINDOW_INVERTED: _l(
        "Booking cannot close before it opens: close it fewer hours before the session, or "
        "open it more days ahead."
    ),
    codes.INVALID_SCHEDULE: _l("Please correct the schedule."),
}

# Domain error fields that the form shows under a differently named control.
FIELD_ALIASES = {"rrule": "weekdays", "breaks": "break_start", "tz": "start_time"}


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class RecurringTimesForm(Form):
    """When sessions happen and how they are cut into slots: shared by schedules and unified rules."""

    frequency = SelectField(
        _l("Repeats"), choices=[("WEEKLY", _l("Every week")), ("MONTHLY", _l("Every month"))]
    )
    weekdays = MultiCheckboxField(
        _l("On"),
        choices=WEEKDAYS,
        validators=[DataRequired(message=_l("Choose at least one day."))],
    )
    ordinal = SelectField(
        _l("Which one in the month"),
        choices=ORDINALS,
        default="-1",
        description=_l("Used for monthly schedules only."),
    )
    interval = IntegerField(
        _l("Every how many weeks or months"),
        default=1,
        validators=[InputRequired(), NumberRange(min=1, max=12)],
    )
    start_time = TimeField(_l("Starts at"), validators=[InputRequired()])
    end_time = TimeField(_l("Ends at"), validators=[InputRequired()])
    slot_minutes = IntegerField(
        _l("Slot length, minutes"),
        default=15,
        validators=[InputRequired(), NumberRange(min=1, max=720)],
    )
    capacity = IntegerField(
        _l("Citizens per slot"),
        default=1,
        validators=[InputRequired(), NumberRange(min=1, max=500)],
    )
    walk_in_places = IntegerField(
        _l("Places kept for walk-ins per session"),
        default=0,
        validators=[InputRequired(), NumberRange(min=0, max=500)],
    )
    break_start = TimeField(_l("Break from"), validators=[Optional()])
    break_end = TimeField(_l("Break until"), validators=[Optional()])
    valid_from = DateField(_l("First date"), validators=[InputRequired()])
    valid_until = DateField(
        _l("Last date"),
        validators=[Optional()],
        description=_l("Leave empty if the schedule has no end."),
    )
    day_off_policy = SelectField(
        _l("When the day is a holiday"),
        choices=[
            ("previous_working_day", _l("Move to the previous working day")),
            ("skip", _l("Skip that session")),
        ],
    )

    def load(self, stored: Any) -> None:
        """Fill the composite fields (rule, break) from a stored schedule or unified rule."""
        rule = parse_rule(stored.rrule)
        self.frequency.data = rule.freq.value
        self.weekdays.data = [str(d.weekday) for d in rule.days]
        ordinal = next((d.ordinal for d in rule.days if d.ordinal is not None), None)
        self.ordinal.data = "working" if rule.working else str(ordinal or -1)
        self.interval.data = rule.interval
        if stored.breaks:
            first = stored.breaks[0]
            self.break_start.data, self.break_end.data = (
                time.fromisoformat(first[0]),
                time.fromisoformat(first[1]),
            )

    def rule_text(self) -> str:
        working = self.ordinal.data == "working"
        ordinal = None if working else int(self.ordinal.data or -1)
        rule = compose_rule(
            Frequency(self.frequency.data),
            [int(d) for d in self.weekdays.data or []],
            ordinal=ordinal,
            working=working,
            interval=self.interval.data or 1,
        )
        return rule.text

    def spec_values(self) -> dict[str, Any] | None:
        """The recurrence values, or None with field errors added when they cannot be built."""
        try:
            rrule = self.rule_text()
        except SchedulingError as error:
            self.add_domain_errors([error])
            return None
        breaks = []
        if self.break_start.data or self.break_end.data:
            if not (self.break_start.data and self.break_end.data):
                self.break_end.errors = [
                    *self.break_end.errors,
                    str(_l("Give both the start and the end of the break.")),
                ]
                return None
            breaks = [
                [self.break_start.data.strftime("%H:%M"), self.break_end.data.strftime("%H:%M")]
            ]
        return {
            "rrule": rrule,
            "start_time": self.start_time.data,
            "end_time": self.end_time.data,
            "slot_minutes": self.slot_minutes.data,
            "capacity": self.capacity.data,
            "walk_in_places": self.walk_in_places.data,
            "breaks": breaks,
            "valid_from": self.valid_from.data,
            "valid_until": self.valid_until.data,
            "day_off_policy": self.day_off_policy.data,
        }

    def add_domain_errors(self, errors: Any) -> None:
        for error in errors:
            name = FIELD_ALIASES.get(error.field or "", error.field or "start_time")
            field = getattr(self, name, None) or self.start_time
            message = str(CODE_MESSAGES.get(error.code, CODE_MESSAGES[codes.INVALID_SCHEDULE]))
            if message not in field.errors:
                field.errors = [*field.errors, message]


class ScheduleForm(RecurringTimesForm):
    kind = SelectField(
        _l("Kind"),
        choices=[
            ("open_door", _l("Open-door day")),
            ("reception", _l("Personal reception by the head")),
        ],
    )
    host_name = StringField(_l("Who receives citizens"), validators=[Optional(), Length(max=200)])
    host_position = StringField(
        _l("Position"),
        validators=[Optional(), Length(max=200)],
        description=_l(
            "Leave it empty when the head receives: citizens then read the head's position in "
            "their own language."
        ),
    )
    exclusions = TextAreaField(
        _l("Dates without a session"),
        validators=[Optional(), Length(max=2000)],
        description=_l("One date per line, as YYYY-MM-DD."),
    )
    location = StringField(
        _l("Room or place"),
        validators=[Optional(), Length(max=300)],
        description=_l(
            "For example the room number. Leave it empty to show the institution's address, "
            "which citizens read in their own language."
        ),
    )
    booking_opens_days = IntegerField(
        _l("Booking opens, days ahead"),
        default=30,
        validators=[InputRequired(), NumberRange(min=1, max=180)],
    )
    booking_closes_hours = IntegerField(
        _l("Booking closes, hours before"),
        default=2,
        validators=[InputRequired(), NumberRange(min=0, max=168)],
    )
    cancel_hours_before = IntegerField(
        _l("Citizens may cancel until, hours before"),
        default=2,
        validators=[InputRequired(), NumberRange(min=0, max=168)],
    )
    version = HiddenField()

    def load(self, stored: Any) -> None:
        super().load(stored)
        self.exclusions.data = "\n".join(stored.exclusions or [])
        self.version.data = str(stored.version)

    def validate_exclusions(self, field: TextAreaField) -> None:
        for line in (field.data or "").split():
            try:
                date.fromisoformat(line.strip())
            except ValueError as error:
                raise ValidationError(
                    str(_l("“%(value)s” is not a date like 2026-12-31.", value=line[:20]))
                ) from error

    def values(self) -> dict[str, Any] | None:
        spec = self.spec_values()
        if spec is None:
            return None
        return {
            **spec,
            "kind": self.kind.data,
            "host_name": (self.host_name.data or "").strip(),
            "host_position": (self.host_position.data or "").strip(),
            "exclusions": sorted({d.strip() for d in (self.exclusions.data or "").split()}),
            "location": (self.location.data or "").strip(),
            "booking_opens_days": self.booking_opens_days.data,
            "booking_closes_hours": self.booking_closes_hours.data,
            "cancel_hours_before": self.cancel_hours_before.data,
        }


class UnifiedRuleForm(RecurringTimesForm):
    """A region's open-door day, which every institution of the region inherits."""

    location_hint = StringField(
        _l("Where (a hint for every institution)"), validators=[Optional(), Length(max=300)]
    )

    def values(self) -> dict[str, Any] | None:
        spec = self.spec_values()
        if spec is None:
            return None
        return {**spec, "location_hint": (self.location_hint.data or "").strip()}


class CancelSessionForm(Form):
    reason = TextAreaField(
        _l("Reason, shown to the citizens who booked"),
        validators=[DataRequired(), Length(max=1000)],
    )


class ExceptionForm(Form):
    reason = StringField(
        _l("Reason for the exception"), validators=[DataRequired(), Length(max=500)]
    )


class CalendarDayForm(Form):
    day = DateField(_l("Date"), validators=[InputRequired()])
    kind = SelectField(
        _l("What happens that day"),
        choices=[
            ("working", _l("Working day (transferred from a weekend)")),
            ("day_off", _l("Extra day off")),
        ],
    )
    note = StringField(
        _l("Note, e.g. the government decree"), validators=[Optional(), Length(max=200)]
    )
