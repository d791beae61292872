"""The administrators' view of the audit trail: filters by action, user, record and dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select

from ..audit.models import AuditEvent
from ..auth.models import User
from ..extensions import db
from ..reports.scope import REPORT_ZONE


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    user_id: int | None = None
    record_type: str = ""
    record_id: int | None = None
    date_from: date | None = None  # local dates (Kazakhstan), both ends included
    date_to: date | None = None


def record_types() -> list[str]:
    """The kinds of record the log holds, for the filter's choices."""
    return list(
        db.session.scalars(
            select(AuditEvent.record_type).distinct().order_by(AuditEvent.record_type)
        )
    )


def user_by_email(email: str) -> User | None:
    return db.session.scalars(
        select(User).where(func.lower(User.email) == email.strip().lower())
    ).first()


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=REPORT_ZONE)


def audit_query(filters: AuditFilter) -> Select[Any]:
    """Newest first; every filter narrows the list."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if filters.action:
        query = query.where(AuditEvent.action.startswith(filters.action, autoescape=True))
    if filters.user_id is not None:
        query = query.where(AuditEvent.user_id == filters.user_id)
    if filters.record_type:
        query = query.where(AuditEvent.record_type == filters.record_type)
    if filters.record_id is not None:
        query = query.where(AuditEvent.record_id == filters.record_id)
    if filters.date_from is not None:
        query = query.where(AuditEvent.at >= _local_midnight(filters.date_from))
    if filters.date_to is not None:
        query = query.where(AuditEvent.at < _local_midnight(filters.date_to + timedelta(days=1)))
    return query


def users_of(events: list[AuditEvent]) -> dict[int, User]:
    ids = {e.user_id for e in events if e.user_id}
    if not ids:
        return {}
    return {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))}
