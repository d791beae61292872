"""Enqueue notifications with the change that causes them; deliver them with retries."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import after_this_request, current_app, has_request_context
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from jinja2 import Environment, StrictUndefined, meta
from sqlalchemy import insert, inspect, select

from ..clock import now as clock_now
from ..config import INSTANCE_DIR
from ..database import write_transaction
from ..extensions import db
from .channels import ChannelBackend, DeliveryError, LogFileBackend, Message, SmtpBackend
from .models import RENDER_FAILED, Channel, DeliveryStatus, Notification

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# Payload keys that carry a secret (the manage link, a signed answer link); removed once the
# message is out.
SECRET_KEYS = ("manage_url", "answer_url")

SUBJECTS = {
    "booking_confirmed": _l("Your meeting is booked"),
    "booking_rescheduled": _l("Your meeting has been moved"),
    "booking_cancelled": _l("Your booking is cancelled"),
    "session_cancelled": _l("The institution has cancelled your meeting"),
    "reminder": _l("Reminder: your meeting is tomorrow"),
    "slot_freed": _l("An earlier time has become free"),
    "outcome_recorded": _l("There is news about your question"),
    "feedback_request": _l("How was your meeting?"),
    "resolution_check": _l("Was your question actually resolved?"),
    "closeout_reminder": _l("A session is still open: please close it out"),
}


def outbox_row(
    channel: Channel,
    recipient: str,
    template: str,
    locale: str,
    payload: dict[str, Any],
    booking_id: int | None = None,
) -> dict[str, Any] | None:
    """The outbox row of one message (None without a recipient: there is nothing to send)."""
    if not recipient:
        return None
    if template not in SUBJECTS:
        raise ValueError(f"unknown notification template {template!r}")
    return {
        "channel": channel.value,
        "recipient": recipient,
        "template": template,
        "locale": locale,
        "payload": payload,
        "booking_id": booking_id,
        "next_attempt_at": clock_now(),
    }


def enqueue(
    channel: Channel,
    recipient: str,
    template: str,
    locale: str,
    payload: dict[str, Any],
    booking_id: int | None = None,
) -> Notification | None:
    """Add a message to the outbox inside the caller's transaction (no-op without a recipient)."""
    return add_to_outbox(outbox_row(channel, recipient, template, locale, payload, booking_id))


def add_to_outbox(row: dict[str, Any] | None) -> Notification | None:
    if row is None:
        return None
    notification = Notification(**row)
    db.session.add(notification)
    return notification


def enqueue_rows(rows: list[dict[str, Any] | None]) -> list[int]:
    """Insert `outbox_row`s in the caller's transaction with one statement, past the ORM (Core,
    on the session's connection: for a new booking's messages, on the busiest path); their ids."""
    present = [row for row in rows if row is not None]
    if not present:
        return []
    table = Notification.__table__
    result = db.session.connection().execute(insert(table).returning(table.c.id), present)
    return list(result.scalars())


def backend_for(channel: str) -> ChannelBackend:
    config = current_app.config
    if channel == Channel.sms:
        return LogFileBackend(Path(config.get("SMS_LOG_PATH") or INSTANCE_DIR / "sms-outbox.log"))
    if config.get("MAIL_BACKEND", "log") == "smtp":
        sender = config.get("MAIL_SENDER", "no-reply@ashyq-esik.kz")
        return SmtpBackend(
            host=config.get("MAIL_SERVER", "localhost"),
            port=int(config.get("MAIL_PORT", 25)),
            sender=sender,
            username=config.get("MAIL_USERNAME"),
            password=config.get("MAIL_PASSWORD"),
            use_tls=bool(config.get("MAIL_USE_TLS", False)),
            message_id_domain=mail_domain(sender, config.get("PUBLIC_URL")),
        )
    return LogFileBackend(Path(config.get("MAIL_LOG_PATH") or INSTANCE_DIR / "mail-outbox.log"))


def mail_domain(sender: str, public_url: str | None) -> str:
    """The domain of the sender's address ("Ashyq Esik <no-reply@ashyq-esik.kz>"), else the
    host of the site's public address."""
    address = parseaddr(sender)[1]
    if "@" in address:
        return address.rpartition("@")[2].lower()
    return urlsplit(public_url or "").hostname or "localhost"


def _message_templates() -> Environment:
    """The app's template environment for messages, with StrictUndefined: a value missing from
    a payload (a scrubbed link, a key an older row never had) is an error, never an empty hole
    in a message that goes out. Shares the app's loader, filters and globals; own cache."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    kept = app.extensions.get("notify_templates")
    if kept is None:
        kept = app.extensions["notify_templates"] = {
            "env": app.jinja_env.overlay(undefined=StrictUndefined, cache_size=50),
            "variables": {},
        }
    return kept["env"]  # type: ignore[no-any-return]


def _template_name(template: str) -> str:
    return f"notify/{template}.txt"


def template_variables(template: str) -> frozenset[str]:
    """The names a message template takes from its payload (its includes' too)."""
    env = _message_templates()
    known: dict[str, frozenset[str]] = current_app.extensions["notify_templates"]["variables"]
    if template not in known:
        names: set[str] = set()
        pending, seen = [_template_name(template)], set()
        while pending:
            name = pending.pop()
            seen.add(name)
            tree = env.parse(env.loader.get_source(env, name)[0])  # type: ignore[union-attr]
            names |= meta.find_undeclared_variables(tree)
            pending += [n for n in meta.find_referenced_templates(tree) if n and n not in seen]
        known[template] = frozenset(names)
    return known[template]


def templates_with(key: str) -> list[str]:
    """The message templates that show `key` (the manage link: the confirmation)."""
    return [template for template in SUBJECTS if key in template_variables(template)]


def missing_secrets(notification: Notification) -> list[str]:
    """The secrets (the manage link) its template shows that its payload no longer holds: they
    were removed when it was sent or failed, and only their hashes are kept."""
    shown = template_variables(notification.template)
    return [key for key in SECRET_KEYS if key in shown and key not in notification.payload]


class RenderFailed(Exception):
    """The message cannot be written from its payload (a value missing, or of the wrong kind):
    sending it again as it is would fail the same way."""


def render(notification: Notification) -> Message:
    """The message text in the citizen's language; RenderFailed when its payload lacks a value
    the template shows (the StrictUndefined environment) or holds one it cannot show."""
    with force_locale(notification.locale):
        subject = str(SUBJECTS[notification.template])
        context = {
            **notification.payload,
            "subject": subject,
            "channel": notification.channel,
        }
        try:
            current_app.update_template_context(context)
            body = _message_templates().get_template(_template_name(notification.template))
            text = body.render(context)
        except Exception as error:  # any of them: the reason goes to the administrator
            raise RenderFailed(str(error) or type(error).__name__) from error
    return Message(recipient=notification.recipient, subject=subject, body=text.strip() + "\n")


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=2 ** min(attempts, 8))


def send_due(
    *, limit: int = 100, at: datetime | None = None, ids: list[int] | None = None
) -> dict[str, int]:
    """Deliver due messages; failures are retried with exponential back-off, then marked failed."""
    at = at or clock_now()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    with write_transaction():
        query = (
            select(Notification)
            .where(
                Notification.status == DeliveryStatus.pending.value,
                Notification.next_attempt_at <= at,
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if ids is not None:
            query = query.where(Notification.id.in_(ids))
        for notification in db.session.scalars(query).all():
            notification.attempts += 1
            try:
                message = render(notification)
            except RenderFailed as error:
                # Rendering again gives the same result: failed at once, the reason shown to
                # the administrator in the outbox.
                log.warning("notification %s could not be rendered", notification.id, exc_info=True)
                notification.status = DeliveryStatus.failed.value
                notification.last_error = (RENDER_FAILED + str(error))[:500]
                _scrub(notification)
                counts["failed"] += 1
                continue
            try:
                backend_for(notification.channel).send(message)
            except DeliveryError as error:
                notification.last_error = str(error)[:500]
                if notification.attempts >= MAX_ATTEMPTS:
                    notification.status = DeliveryStatus.failed.value
                    _scrub(notification)
                    counts["failed"] += 1
                else:
                    notification.next_attempt_at = at + backoff(notification.attempts)
                    counts["retry"] += 1
                log.warning("notification %s: %s", notification.id, notification.last_error)
                continue
            notification.status = DeliveryStatus.sent.value
            notification.sent_at = clock_now()
            notification.last_error = ""
            _scrub(notification)
            counts["sent"] += 1
    return counts


def _scrub(notification: Notification) -> None:
    if any(key in notification.payload for key in SECRET_KEYS):
        notification.payload = {
            k: v for k, v in notification.payload.items() if k not in SECRET_KEYS
        }


def deliver_after_commit(notifications: list[Notification | int | None]) -> None:
    """Hand fresh messages (rows or their ids) to the worker (RQ when Redis is configured) or
    send them now."""
    # The identity key, not `n.id`: the commit expired the rows and reading an attribute would
    # reload each one with a query of its own.
    keys = [
        (n,) if isinstance(n, int) else inspect(n).identity for n in notifications if n is not None
    ]
    ids = [key[0] for key in keys if key is not None]
    if not ids:
        return
    if current_app.config.get("REDIS_URL"):
        from .worker import enqueue_delivery

        try:
            enqueue_delivery(current_app.config["REDIS_URL"], ids)
            return
        except Exception:  # Redis down: the periodic `flask notify send` still delivers
            log.warning("could not enqueue notification delivery", exc_info=True)
            return
    if current_app.config.get("NOTIFY_SYNC", True):
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        def send() -> None:
            with app.app_context():
                try:
                    send_due(ids=ids)
                except Exception:
                    log.warning("synchronous notification delivery failed", exc_info=True)

        if has_request_context():
            # Sent once the response is on its way: the citizen does not wait for the SMTP relay.
            @after_this_request
            def _later(response: Any) -> Any:
                response.call_on_close(send)
                return response
        else:
            send()
