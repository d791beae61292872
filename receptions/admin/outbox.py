"""What administrators may do with the notification outbox: send a failed message again."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from ..audit.services import record as audit
from ..booking.services import link_delivered_elsewhere, reissue_manage_link, restore_answer_link
from ..clock import now as clock_now
from ..database import write_transaction
from ..errors import Conflict, NotInScope
from ..extensions import db
from ..notify.models import Channel, DeliveryStatus, Notification
from ..notify.services import RenderFailed, deliver_after_commit, missing_secrets, render

# Where the old link had been delivered, and the new one goes too: one sentence per channel,
# so each language can say "by SMS" and "by e-mail" in its own words.
ALSO_SENT_BY = {
    Channel.sms.value: _l(
        "The old link had been delivered by SMS: the new one is sent by SMS too."
    ),
    Channel.email.value: _l(
        "The old link had been delivered by e-mail: the new one is sent by e-mail too."
    ),
}


@dataclass(frozen=True)
class Retried:
    notification: Notification
    new_link: bool = False
    also_sent_by: tuple[str, ...] = ()

    def explained(self) -> list[str]:
        """What the administrator is told has been done."""
        if not self.new_link:
            return [str(_l("The message will be sent again."))]
        said = [str(_l("The message will be sent again with a new manage link."))]
        return said + [str(ALSO_SENT_BY[channel]) for channel in self.also_sent_by]


def retry_notes(notifications: list[Notification]) -> dict[int, list[str]]:
    """What "Send again" will do beyond sending, for the failed messages on a page that lost
    their manage link."""
    lost = [
        n
        for n in notifications
        if n.status == DeliveryStatus.failed and "manage_url" in missing_secrets(n)
    ]
    elsewhere = link_delivered_elsewhere(lost)
    new_link = _l(
        "Its manage link was removed when it failed: sending it again gives the booking a new "
        "link, and the old one stops working."
    )
    return {n.id: [str(new_link)] + [str(ALSO_SENT_BY[c]) for c in elsewhere[n.id]] for n in lost}


def retry_notification(notification_id: int) -> Retried:
    """Queue a failed message again from its first attempt; audited, like every staff write.

    A message that has lost the manage link it shows (removed when it failed) goes with a new
    one (`reissue_manage_link`); one that cannot be written from its payload is refused, as it
    would only fail again.
    """
    with write_transaction():
        notification = db.session.get(Notification, notification_id, with_for_update=True)
        if notification is None:
            raise NotInScope()
        if notification.status != DeliveryStatus.failed:
            raise Conflict(str(_l("Only a message that could not be delivered can be sent again.")))
        missing = missing_secrets(notification)
        if "answer_url" in missing:
            restore_answer_link(notification)  # signed, not stored: the same link again
        copies = reissue_manage_link(notification) if "manage_url" in missing else None
        try:
            render(notification)
        except RenderFailed as error:
            raise Conflict(
                str(
                    _l(
                        "The message cannot be written from its data (%(reason)s), so it is "
                        "not sent again.",
                        reason=str(error),
                    )
                )
            ) from error
        also_sent_by = tuple(copy.channel for copy in copies or ())
        audit(
            "notification.retried",
            "notification",
            notification.id,
            channel=notification.channel,
            template=notification.template,
            attempts=notification.attempts,
            **({} if copies is None else {"new_manage_link": True, "also_sent_by": also_sent_by}),
        )
        notification.status = DeliveryStatus.pending.value
        notification.attempts = 0
        notification.next_attempt_at = clock_now()
    deliver_after_commit([notification, *(copies or ())])
    return Retried(notification, copies is not None, also_sent_by)
