"""The citizen's booking form and the forms on the manage page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..forms import Form
from ..urls import whole_number
from . import identity
from .services import ForeignFormKey, canonical_reference

QUESTION_MAX = 2000
ACCESSIBILITY_NEEDS = [
    ("wheelchair", _l("Wheelchair access")),
    ("sign_language", _l("Sign-language interpreter")),
    ("companion", _l("I will come with an accompanying person")),
    ("other", _l("Other (describe below)")),
]


def row_id(value: object) -> int:
    """A row's id as a page sends it (a slot, a topic); anything else (a word, a sign, a number
    too long for the column) is 0, a row that does not exist, which the service refuses with
    its reason."""
    number = whole_number(str(value))
    return 0 if number is None else number


def topic_field_choices(topics: Iterable[tuple[int, str]]) -> list[tuple[int | str, str]]:
    """The booking form's topic choices: an empty prompt first (chosen until the citizen picks a
    topic, and refused as no answer), then `topics`."""
    return [("", str(_l("Choose a topic"))), *topics]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # WTForms' own message repeats the unknown value, and its Russian one is unfinished
        # (fuzzy, so English is shown); a box that is not on the page is a form out of date.
        kwargs.setdefault("invalid_choice_message", _l("Choose only from the options given."))
        super().__init__(*args, **kwargs)


class BookingForm(Form):
    full_name = StringField(_l("Full name"), validators=[DataRequired(), Length(min=2, max=200)])
    iin = StringField(
        _l("IIN"),
        validators=[DataRequired()],
        description=_l(
            "12 digits. We keep only a protected fingerprint of it and its last 4 digits."
        ),
    )
    phone = TelField(
        _l("Mobile phone"),
        validators=[DataRequired(), Length(max=30)],
        description=_l("For example +7 701 123 45 67. The confirmation comes by SMS."),
    )
    email = EmailField(_l("E-mail (optional)"), validators=[Optional(), Email(), Length(max=200)])
    locale = SelectField(
        _l("Language for messages"),
        choices=[("kk", "Қазақша"), ("ru", "Русский"), ("en", "English")],
    )
    # The booking checks that the topic is active (a form may come back after its topic was
    # retired), so submitting reads no list: the list is read to show the form. The list starts
    # with an empty prompt (topic_field_choices): a citizen who does not choose is asked to,
    # not filed under the first topic.
    topic_id = SelectField(
        _l("Topic"),
        coerce=row_id,
        validate_choice=False,
        validators=[InputRequired(message=_l("Choose the topic of your question."))],
    )
    question = TextAreaField(
        _l("Your question"),
        validators=[DataRequired(), Length(min=5, max=QUESTION_MAX)],
        description=_l("Up to %(n)d characters.", n=QUESTION_MAX),
    )
    accessibility = MultiCheckboxField(
        _l("Do you need anything to get to the meeting?"),
        choices=ACCESSIBILITY_NEEDS,
        validators=[Optional()],
    )
    # No Optional(): it would stop the chain before validate_accessibility_note on an empty note.
    accessibility_note = StringField(
        _l("Anything else we should know"), validators=[Length(max=300)]
    )
    consent = BooleanField(
        _l("I agree to the processing of my personal data as described above."),
        validators=[DataRequired(message=_l("We cannot book the meeting without your consent."))],
    )
    # A field people never see; bots fill it in.
    website = StringField(_l("Leave this field empty"), validators=[Optional()])
    # Only a page that was tampered with, or broken on its way, sends a key without its form.
    idempotency_key = HiddenField(
        validators=[
            DataRequired(message=ForeignFormKey.message),
            Length(min=16, max=64, message=ForeignFormKey.message),
        ]
    )

    def validate_iin(self, field: StringField) -> None:
        if not identity.is_valid_iin(field.data or ""):
            raise ValidationError(str(_l("This IIN is not valid: check the 12 digits.")))

    def validate_accessibility_note(self, field: StringField) -> None:
        if "other" in (self.accessibility.data or []) and not (field.data or "").strip():
            raise ValidationError(str(_l("You ticked “Other”: please describe what you need.")))

    def validate_phone(self, field: TelField) -> None:
        try:
            self.normalised_phone = identity.normalise_phone(field.data or "")
        except identity.InvalidPhone as error:
            raise ValidationError(
                str(_l("Enter a Kazakhstan mobile number, e.g. +7 701 123 45 67."))
            ) from error


class CancelBookingForm(Form):
    confirm = HiddenField(default="yes", validators=[DataRequired()])


class RescheduleForm(Form):
    # The times on the page are an offer, not the rule: services.reschedule judges the choice.
    slot_id = RadioField(
        _l("New time"),
        coerce=row_id,
        validate_choice=False,
        validators=[InputRequired(message=_l("Choose a new time."))],
    )


class FeedbackForm(Form):
    rating = RadioField(
        _l("How useful was the meeting?"),
        coerce=int,
        choices=[
            (5, _l("5 — very useful")),
            (4, _l("4 — useful")),
            (3, _l("3 — so-so")),
            (2, _l("2 — not very useful")),
            (1, _l("1 — useless")),
        ],
        validators=[InputRequired(message=_l("Choose a rating."))],
    )
    comment = TextAreaField(_l("Comment (optional)"), validators=[Optional(), Length(max=1000)])


class ResolvedForm(Form):
    resolved = RadioField(
        _l("Was your question actually resolved?"),
        choices=[("yes", _l("Yes")), ("no", _l("No"))],
        validators=[InputRequired(message=_l("Choose an answer."))],
    )


def _as_stored_reference(typed: str | None) -> str | None:
    return canonical_reference(typed or "") or typed


class StatusLookupForm(Form):
    class Meta:
        csrf = False  # a GET search form that changes nothing

    # Read as it is stored (a typed one that cannot be a reference stays as typed, for the form).
    reference = StringField(
        _l("Booking reference"),
        validators=[DataRequired()],
        filters=[_as_stored_reference],
        description=_l("For example ATY-7K3M9Q"),
    )

    def validate_reference(self, field: StringField) -> None:
        if canonical_reference(field.data or "") is None:
            raise ValidationError(
                str(_l("No booking has this reference. Check the letters and digits."))
            )


class TopicForm(Form):
    slug = StringField(
        _l("Code"),
        validators=[DataRequired(), Length(max=40)],
        description=_l("Latin letters, digits and underscores, e.g. housing_utilities."),
    )
    name_kk = StringField(_l("Name in Kazakh"), validators=[DataRequired(), Length(max=120)])
    name_ru = StringField(_l("Name in Russian"), validators=[DataRequired(), Length(max=120)])
    name_en = StringField(_l("Name in English"), validators=[DataRequired(), Length(max=120)])

    def validate_slug(self, field: StringField) -> None:
        import re

        if not re.fullmatch(r"[a-z0-9_]+", field.data or ""):
            raise ValidationError(str(_l("Use lowercase Latin letters, digits and underscores.")))
