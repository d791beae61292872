"""What administrators may do with the notification outbox: send a failed message again."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from ..audit.services import record as audit
from ..clock import now as clock_now
from ..database import write_transaction
from ..errors import Conflict, NotInScope
from ..extensions import db
from ..notify.models import DeliveryStatus, Notification


def retry_notification(notification_id: int) -> Notification:
    """Queue a failed message again from its first attempt; audited, like every staff write."""
    with write_transaction():
        notification = db.session.get(Notification, notification_id, with_for_update=True)
        if notification is None:
            raise NotInScope()
        if notification.status != DeliveryStatus.failed:
            raise Conflict(str(_l("Only a message that could not be delivered can be sent again.")))
        audit(
            "notification.retried",
            "notification",
            notification.id,
            channel=notification.channel,
            template=notification.template,
            attempts=notification.attempts,
        )
        notification.status = DeliveryStatus.pending.value
        notification.attempts = 0
        notification.next_attempt_at = clock_now()
    return notification
