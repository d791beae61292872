"""The single place where audit events are written."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from ..extensions import db
from .models import AuditEvent


def record(action: str, record_type: str, record_id: int | None, **details: Any) -> AuditEvent:
    """Add an audit event to the current transaction (the caller's write commits it).

    Details must never carry personal data (IIN, phone): name what changed, not the values.
    """
    user_id = current_user.id if getattr(current_user, "is_authenticated", False) else None
    event = AuditEvent(
        user_id=user_id,
        action=action,
        record_type=record_type,
        record_id=record_id,
        details=details,
    )
    db.session.add(event)
    return event
