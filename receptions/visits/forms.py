"""Forms of the staff workspace."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import HiddenInput

from ..booking import identity
from ..forms import Form

OUTCOME_CHOICES = [
    ("resolved", _l("Resolved positively")),
    ("explained", _l("Explained")),
    ("pending", _l("Being resolved")),
]
RECEIVED_BY_CHOICES = [("head", _l("The head")), ("deputy", _l("A deputy"))]


def _chosen_topic(value: object) -> int | None:
    """The empty prompt is no topic (refused as no answer), anything else a topic's id."""
    return None if value in ("", None) else int(str(value))


def _topic_field() -> SelectField:
    """A question's topic on the staff forms. Its choices start with an empty prompt
    (booking.forms.topic_field_choices), so a question staff do not file is refused rather than
    counted under the first topic in the reports."""
    return SelectField(
        _l("Topic"),
        coerce=_chosen_topic,
        validators=[InputRequired(message=_l("Choose the topic of the question."))],
    )


class WalkInForm(Form):
    normalised_phone = ""  # set by validate_phone when a number is given
    # Keyboard-first: the cursor waits in the name, Tab moves on, Enter in any line registers.
    name = StringField(
        _l("Full name"),
        validators=[DataRequired(), Length(max=200)],
        render_kw={"autofocus": True},
    )
    topic_id = _topic_field()
    summary = TextAreaField(_l("Question"), validators=[DataRequired(), Length(max=2000)])
    iin = StringField(_l("IIN (optional)"), validators=[Optional()])
    phone = StringField(_l("Mobile phone (optional)"), validators=[Optional(), Length(max=30)])
    received_by = SelectField(_l("Received by"), choices=RECEIVED_BY_CHOICES, default="head")
    received_by_name = StringField(
        _l("Name of the person who received"), validators=[Optional(), Length(max=200)]
    )

    def validate_iin(self, field: StringField) -> None:
        if field.data and not identity.is_valid_iin(field.data):
            raise ValidationError(str(_l("This IIN is not valid: check the 12 digits.")))

    def validate_phone(self, field: StringField) -> None:
        self.normalised_phone = ""
        if field.data:
            try:
                self.normalised_phone = identity.normalise_phone(field.data)
            except identity.InvalidPhone as error:
                raise ValidationError(
                    str(_l("Enter a Kazakhstan mobile number, e.g. +7 701 123 45 67."))
                ) from error


class QuestionForm(Form):
    topic_id = _topic_field()
    summary = TextAreaField(_l("Question"), validators=[DataRequired(), Length(max=2000)])


class OutcomeForm(Form):
    outcome = RadioField(
        _l("Outcome"),
        choices=OUTCOME_CHOICES,
        validators=[InputRequired(message=_l("Choose the outcome."))],
    )
    responsible = StringField(
        _l("Responsible person"),
        validators=[Optional(), Length(max=200)],
        description=_l("Required when the question is being resolved."),
    )
    due_date = DateField(
        _l("Due date"),
        validators=[Optional()],
        description=_l("Default: in 15 days. At most a year ahead."),
    )
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=2000)])
    version = HiddenField()


class CloseQuestionForm(Form):
    outcome = RadioField(
        _l("Result"),
        choices=OUTCOME_CHOICES[:2],
        validators=[InputRequired(message=_l("Choose the outcome."))],
    )
    note = TextAreaField(_l("What was done"), validators=[DataRequired(), Length(max=2000)])
    version = HiddenField()


class FollowUpChangeForm(Form):
    """A pending question handed to another responsible person, or given a later due date."""

    responsible = StringField(
        _l("Responsible person"),
        validators=[
            DataRequired(message=_l("Name the person responsible for a pending question.")),
            Length(max=200),
        ],
    )
    due_date = DateField(
        _l("Due date"),
        validators=[InputRequired(message=_l("Enter the due date."))],
        description=_l("At most a year ahead."),
    )
    reason = TextAreaField(
        _l("Reason for the change"),
        validators=[DataRequired(message=_l("Give the reason for the change.")), Length(max=1000)],
    )
    version = HiddenField()


class CloseSessionForm(Form):
    held = RadioField(
        _l("Did the session take place?"),
        choices=[("yes", _l("Yes, it was held")), ("no", _l("No, it did not take place"))],
        validators=[InputRequired()],
    )
    reason = StringField(
        _l("Reason, if it did not take place"), validators=[Optional(), Length(max=500)]
    )
    # Explicit, audited confirmations: check-in is never automatic, nor is an outcome. Each hidden
    # count is the number the page listed, so that a confirmation never covers a booking, a
    # question or a citizen the user did not see.
    mark_no_shows = BooleanField(_l("Mark the remaining bookings as no-show"))
    unmarked = IntegerField(widget=HiddenInput(), validators=[Optional(), NumberRange(0, 10000)])
    confirm_without_outcome = BooleanField(_l("Close with the questions without an outcome"))
    without_outcome = IntegerField(
        widget=HiddenInput(), validators=[Optional(), NumberRange(0, 10000)]
    )
    confirm_no_question = BooleanField(_l("Confirm that these citizens raised no question"))
    without_question = IntegerField(
        widget=HiddenInput(), validators=[Optional(), NumberRange(0, 10000)]
    )

    def confirmed(self, confirmation: BooleanField, shown: IntegerField) -> int | None:
        """How many the page listed when the user ticked `confirmation`; None if not ticked."""
        return shown.data if confirmation.data else None

    def show_listed(self, *, unmarked: int, without_outcome: int, without_question: int) -> None:
        """Name in each confirmation's label how many it covers on the page as read now; one
        ticked for another number (the session changed meanwhile) is shown unticked."""
        labels = (
            (
                self.mark_no_shows,
                self.unmarked,
                unmarked,
                _(
                    "Confirm that the remaining bookings did not come (%(num)s) and mark them "
                    "as no-show",
                    num=unmarked,
                ),
            ),
            (
                self.confirm_without_outcome,
                self.without_outcome,
                without_outcome,
                _(
                    "Close with the questions without an outcome (%(num)s): they stay on the "
                    "follow-up list until one is recorded",
                    num=without_outcome,
                ),
            ),
            (
                self.confirm_no_question,
                self.without_question,
                without_question,
                _("Confirm that these citizens raised no question (%(num)s)", num=without_question),
            ),
        )
        for confirmation, shown, count, label in labels:
            confirmation.label.text = label
            if shown.data != count:
                confirmation.data = False


class ReopenSessionForm(Form):
    reason = StringField(_l("Reason for reopening"), validators=[DataRequired(), Length(max=500)])


class SignOffForm(Form):
    reason = TextAreaField(
        _l("Reason for the correction"), validators=[Optional(), Length(max=1000)]
    )
    # A sign-off is an official act: never a single stray click.
    confirm = BooleanField(
        _l("I confirm these figures"),
        validators=[DataRequired(message=_l("Confirm the figures before signing them off."))],
    )


class ReceivedByForm(Form):
    received_by = SelectField(_l("Received by"), choices=RECEIVED_BY_CHOICES)
    received_by_name = StringField(
        _l("Name of the person who received"), validators=[DataRequired(), Length(max=200)]
    )
