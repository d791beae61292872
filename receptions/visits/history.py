"""What the citizen's public status page shows of each question: its steps from question_event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..booking.models import Booking
from ..extensions import db
from .models import Question, QuestionEvent, Visit

# The steps a citizen sees. A question handed to another official ("reassigned") is staff's own
# business and would name a member of staff: the citizen is told when, not who.
PUBLIC_STEPS = frozenset(("raised", "outcome", "closed", "due_date_changed"))


@dataclass(frozen=True)
class QuestionStep:
    at: datetime
    kind: str  # raised | outcome | closed | due_date_changed
    outcome: str | None
    due_date: date | None


@dataclass(frozen=True)
class QuestionHistory:
    """One question of the booking's visit, without its text or anyone's name."""

    number: int
    outcome: str | None
    due_date: date | None
    closed_at: datetime | None
    steps: list[QuestionStep]


def question_history(booking: Booking) -> list[QuestionHistory]:
    """The questions raised at the visit of this booking, each with its outcome and its steps.

    Read-only and free of personal data (no question text, no staff note), since anyone holding
    the reference code may see it.
    """
    questions = db.session.scalars(
        select(Question)
        .join(Visit, Visit.id == Question.visit_id)
        .where(Visit.booking_id == booking.id)
        .options(selectinload(Question.events))
        .order_by(Question.id)
    ).all()
    return [
        QuestionHistory(
            number=number,
            outcome=question.outcome,
            due_date=question.due_date if question.outcome == "pending" else None,
            closed_at=question.closed_at,
            steps=[_step(event) for event in question.events if event.kind in PUBLIC_STEPS],
        )
        for number, question in enumerate(questions, start=1)
    ]


def _step(event: QuestionEvent) -> QuestionStep:
    return QuestionStep(
        at=event.at, kind=event.kind, outcome=event.outcome, due_date=event.due_date
    )
