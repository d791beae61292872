"""The outbox delivers through a real local SMTP server, retries, and scrubs the manage link."""

from __future__ import annotations

import email
import email.policy
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from flask_babel import force_locale, gettext
from sqlalchemy import select

from receptions.booking import services as booking_services
from receptions.booking.models import Booking, WaitlistEntry
from receptions.database import utcnow
from receptions.extensions import db
from receptions.logging_filters import RedactSecrets, redact
from receptions.notify.models import Notification
from receptions.notify.services import MAX_ATTEMPTS, render, send_due
from tests.conftest import csrf_from, submit
from tests.factories import make_institution, make_open_session, make_topic
from tests.integration.test_booking import book

ROOT = Path(__file__).resolve().parents[2]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture
def app_config(tmp_path, request):
    port = request.getfixturevalue("smtp_server")[0] if "smtp_server" in request.fixturenames else 1
    return {
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "SMS_LOG_PATH": str(tmp_path / "sms.log"),
    }


def test_confirmation_reaches_the_smtp_server_in_the_citizens_language(
    app, client, smtp_server, tmp_path
):
    _, inbox = smtp_server
    session = make_open_session()
    topic = make_topic()
    response, _ = book(client, session.slots[0].id, topic, lang="ru")
    token_path = response.headers["Location"].split("?")[0]
    counts = app.test_cli_runner().invoke(args=["notify", "send"])
    assert "sent: 2" in counts.output, counts.output
    assert len(inbox.messages) == 1
    recipients, content = inbox.messages[0]
    assert recipients == ["saule@example.kz"]
    message = email.message_from_string(content, policy=email.policy.default)
    body = message.get_body().get_content()
    assert token_path in body  # the manage link is in the message...
    with app.test_request_context(), force_locale("ru"):
        assert message["Subject"] == gettext("Your meeting is booked")
    sms = (tmp_path / "sms.log").read_text()
    assert "+7 701 ••• •• 67" in sms and "+77011234567" not in sms
    assert token_path.split("/m/")[1] not in sms and "/m/[redacted]" in sms
    db.session.expire_all()
    for notification in db.session.scalars(select(Notification)):
        assert notification.status == "sent"
        assert "manage_url" not in notification.payload  # ...and no longer in the database


def test_smtp_messages_carry_a_date_and_a_message_id_on_the_senders_domain(
    app, client, smtp_server
):
    """Without Date (required by RFC 5322) and Message-ID, relays add their own or mark the
    message as spam; the Message-ID's domain is the sender's, not this host's name."""
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    _, inbox = smtp_server
    app.config["MAIL_SENDER"] = "Ashyq Esik <no-reply@mail.ashyq-esik.kz>"
    book(client, make_open_session().slots[0].id, make_topic())
    before = datetime.now(UTC).replace(microsecond=0)
    assert send_due()["sent"] == 2
    message = email.message_from_string(inbox.messages[0][1], policy=email.policy.default)
    assert message["Date"].endswith(" -0000")  # UTC (RFC 5322: the sender's zone not said)
    sent_at = parsedate_to_datetime(message["Date"]).replace(tzinfo=UTC)
    assert before <= sent_at <= datetime.now(UTC)
    assert re.fullmatch(r"<[^@<>\s]+@mail\.ashyq-esik\.kz>", message["Message-ID"])
    assert len(message.get_all("Message-ID")) == 1 and len(message.get_all("Date")) == 1


def test_demo_log_channels_keep_no_link_phone_or_address(app, client, tmp_path):
    """The log-file stand-ins are logs: masked recipients, secret links redacted."""
    app.config.update(MAIL_BACKEND="log", MAIL_LOG_PATH=str(tmp_path / "mail.log"))
    response, _ = book(client, make_open_session().slots[0].id, make_topic(), lang="kk")
    token = response.headers["Location"].split("/m/")[1].split("?")[0]
    counts = app.test_cli_runner().invoke(args=["notify", "send"])
    assert "sent: 2" in counts.output, counts.output
    for log in ("mail.log", "sms.log"):
        text = (tmp_path / log).read_text()
        assert "/m/[redacted]" in text
        assert token not in text
        assert "saule@example.kz" not in text and "+77011234567" not in text
    assert "s•••e@example.kz" in (tmp_path / "mail.log").read_text()


def test_failed_delivery_is_retried_with_back_off_then_marked_failed(app, client):
    # app_config points MAIL_PORT at 1, where nothing listens.
    session = make_open_session()
    book(client, session.slots[0].id, make_topic())
    at = utcnow()
    first = send_due(at=at)
    assert first == {"sent": 1, "retry": 1, "failed": 0}  # the SMS log works, SMTP does not
    email = db.session.scalars(select(Notification).where(Notification.channel == "email")).one()
    assert email.attempts == 1 and email.next_attempt_at > at and "SMTP" in email.last_error
    assert send_due(at=at) == {"sent": 0, "retry": 0, "failed": 0}  # not due yet
    for step in range(2, MAX_ATTEMPTS + 1):
        at = email.next_attempt_at + timedelta(seconds=1)
        send_due(at=at)
        db.session.expire_all()
        email = db.session.get(Notification, email.id)
        assert email.attempts == step
    assert email.status == "failed" and "manage_url" not in email.payload


def test_reminder_goes_only_to_bookings_made_more_than_a_day_before(app, client):
    session = make_open_session(starts_in_hours=20)
    book(client, session.slots[0].id, make_topic())
    booking = db.session.scalars(select(Booking)).one()
    assert booking_services.queue_reminders() == 0  # booked less than 24 h before
    booking.created_at = booking.booked_at = booking.booked_at - timedelta(days=3)
    db.session.commit()
    with app.test_request_context():
        assert booking_services.queue_reminders() == 1
        assert booking_services.queue_reminders() == 0  # once only
    reminders = db.session.scalars(select(Notification).where(Notification.template == "reminder"))
    assert len(reminders.all()) == 2


def test_no_feedback_request_to_a_citizen_who_has_rated_the_meeting_already(app, client):
    """A citizen may rate on the manage page before the hourly job runs: asking them again
    afterwards is a nuisance. Whoever has not rated is still asked, once."""
    from tests.conftest import submit
    from tests.factories import make_iin

    session = make_open_session(slots=2)
    topic = make_topic()
    rated, _ = book(client, session.slots[0].id, topic)
    book(client, session.slots[1].id, topic, iin=make_iin(700), phone="+77015570000")
    for booking in db.session.scalars(select(Booking)):
        booking.status = "attended"
    db.session.commit()
    token = _token(rated)
    response = submit(client, f"/m/{token}/feedback", {"rating": "5"}, form_url=f"/m/{token}")
    assert response.status_code == 303
    after = session.slots[1].ends_at + timedelta(hours=1)
    assert booking_services.queue_feedback_requests(at=after) == 1
    assert booking_services.queue_feedback_requests(at=after) == 0
    requests = db.session.scalars(
        select(Notification).where(Notification.template == "feedback_request")
    ).all()
    asked = db.session.scalars(select(Booking).where(Booking.slot_id == session.slots[1].id))
    assert {n.booking_id for n in requests} == {asked.one().id} and len(requests) == 2


def test_no_reminder_after_moving_the_meeting_into_the_next_day(app, client):
    from tests.integration.test_booking import add_session

    first = make_open_session(starts_in_hours=72)
    soon = add_session(first, hours_later=-52)  # 20 hours from now, the same schedule
    response, _ = book(client, first.slots[0].id, make_topic())
    token = response.headers["Location"].split("/m/")[1].split("?")[0]
    booking = db.session.scalars(select(Booking)).one()
    booking.created_at = booking.booked_at = booking.booked_at - timedelta(days=3)
    db.session.commit()
    with app.test_request_context():
        booking_services.reschedule(token, soon.slots[0].id)
        assert booking_services.queue_reminders() == 0  # moved minutes ago: details are fresh
    db.session.expire_all()
    booking = db.session.scalars(select(Booking)).one()
    assert booking.slot_id == soon.slots[0].id and booking.reminder_sent_at is None
    assert booking.booked_at > booking.created_at + timedelta(days=2)
    booking.booked_at -= timedelta(hours=1)  # moved an hour ago: still within the day
    db.session.commit()
    with app.test_request_context():
        assert booking_services.queue_reminders() == 0
    reminders = select(Notification).where(Notification.template == "reminder")
    assert db.session.scalars(reminders).all() == []


def _token(response) -> str:
    return response.headers["Location"].split("/m/")[1].split("?")[0]


def _join_waitlist(client, token):
    from tests.conftest import submit

    return submit(
        client,
        f"/m/{token}/waitlist",
        {"confirm": "yes"},
        # Its CSRF token from a page that always has a form: once on the waitlist, the manage
        # page says so instead of offering the button again (a POST still rejoins).
        form_url=f"/m/{token}/cancel",
        headers={"Accept-Language": "en"},
    )


def _others_book(client, slots, topic, seed: int) -> list[str]:
    """Other citizens take `slots` (one each): the manage tokens of their bookings. A booking
    joins the waitlist only while no earlier time is free."""
    from tests.factories import make_iin

    tokens = []
    for n, slot in enumerate(slots):
        response, _ = book(
            client, slot.id, topic, iin=make_iin(seed + n), phone=f"+770155{seed + n:05d}"
        )
        assert response.status_code == 303, response.status_code
        tokens.append(_token(response))
    return tokens


def _cancel(app, token: str) -> None:
    with app.test_request_context():
        booking_services.cancel_by_citizen(token)


def test_waitlist_counts_notices_per_citizen_and_schedule_not_per_joining(app, client):
    topic = make_topic()
    session = make_open_session(slots=8)
    others = _others_book(client, session.slots[:7], topic, seed=200)
    waiting, _ = book(client, session.slots[7].id, topic)
    assert _join_waitlist(client, _token(waiting)).status_code == 303
    for n in range(2):
        _cancel(app, others[n])
    _others_book(client, session.slots[:2], topic, seed=220)  # the freed times taken again
    assert _join_waitlist(client, _token(waiting)).status_code == 303  # rejoining keeps the count
    entry = db.session.scalars(select(WaitlistEntry)).one()
    assert entry.notices_sent == 2 and entry.active is True
    # Cancelling and booking again is the same citizen at the same schedule: the count stays.
    _cancel(app, _token(waiting))
    _cancel(app, others[6])  # no one waits for it now: no notice
    again, _ = book(client, session.slots[6].id, topic)
    assert _join_waitlist(client, _token(again)).status_code == 303
    db.session.expire_all()
    entry = db.session.scalars(select(WaitlistEntry)).one()
    rebooked = db.session.scalars(
        select(Booking).where(Booking.slot_id == session.slots[6].id, Booking.status == "booked")
    )
    assert entry.booking_id == rebooked.one().id and entry.notices_sent == 2
    _cancel(app, others[2])
    db.session.expire_all()
    entry = db.session.scalars(select(WaitlistEntry)).one()
    assert entry.notices_sent == 3 and entry.active is False
    refused = _join_waitlist(client, _token(again))
    assert refused.status_code == 409
    assert "already told you three times" in refused.get_data(as_text=True)
    db.session.expire_all()
    entry = db.session.scalars(select(WaitlistEntry)).one()
    assert entry.notices_sent == 3 and entry.active is False


def _hours_until_mid_month_morning(institution) -> float:
    """Hours from now to 10:00 on a mid-month day, local time, three days ahead or more: a
    session's slots then fall in one month whatever the clock says."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    now = datetime.now(UTC)
    day = now.astimezone(ZoneInfo(institution.district.region.timezone)) + timedelta(days=3)
    while not 5 <= day.day <= 25:
        day += timedelta(days=1)
    return (day.replace(hour=10, minute=0, second=0, microsecond=0) - now).total_seconds() / 3600


def test_a_waitlist_notice_says_how_to_move_the_booking_and_that_works(app, client):
    """The citizen holds a booking there that month, so a second one is refused: the notice tells
    them to move the booking they have, by its own link, and moving it takes the freed time."""

    topic = make_topic()
    institution = make_institution()
    session = make_open_session(
        institution, slots=3, starts_in_hours=_hours_until_mid_month_morning(institution)
    )
    freed, _taken = _others_book(client, session.slots[:2], topic, seed=300)
    later, _ = book(client, session.slots[2].id, topic, lang="kk")
    waiting_token = _token(later)
    assert _join_waitlist(client, waiting_token).status_code == 303
    _cancel(app, freed)
    waiting = db.session.scalars(select(Booking).where(Booking.slot_id == session.slots[2].id))
    waiting = waiting.one()
    notice = db.session.scalars(
        select(Notification).where(
            Notification.template == "slot_freed",
            Notification.booking_id == waiting.id,
            Notification.channel == "sms",
        )
    ).one()
    with app.test_request_context():
        text = render(notice).body
        with force_locale("kk"):
            move = gettext("Move to another time")
    assert waiting.reference in text and f"«{move}»" in text
    # The institution's page shows the times; the sentence says the booking is moved, not made
    # anew there (a second booking that month would be refused, as below).
    assert f"http://localhost/institutions/{institution.id}" in text
    again, _ = book(client, session.slots[0].id, topic, lang="kk")
    assert again.status_code == 409  # what the old notice sent them to do
    # What it says now: the booking's own link, "Move to another time", the freed time.
    page = client.get(f"/m/{waiting_token}/reschedule", headers={"Accept-Language": "kk"})
    assert page.status_code == 200
    from tests.conftest import submit

    moved = submit(
        client,
        f"/m/{waiting_token}/reschedule",
        {"slot_id": str(session.slots[0].id)},
        form_url=f"/m/{waiting_token}/reschedule",
    )
    assert moved.status_code == 303
    db.session.expire_all()
    assert db.session.get(Booking, waiting.id).slot_id == session.slots[0].id


def test_no_waitlist_notice_for_a_time_whose_booking_has_closed(app, client):
    """A booking may be cancelled after the booking window has closed for its time: no one could
    take that time, so no notice is sent and none of the three is used up."""

    topic = make_topic()
    session = make_open_session(slots=3)
    freed, _taken = _others_book(client, session.slots[:2], topic, seed=310)
    later, _ = book(client, session.slots[2].id, topic)
    assert _join_waitlist(client, _token(later)).status_code == 303
    session.schedule.booking_closes_hours = 24 * 4  # booking closes 4 days ahead; meetings in 3
    db.session.commit()
    _cancel(app, freed)  # cancelling stays open: 2 hours ahead
    db.session.expire_all()
    notices = select(Notification).where(Notification.template == "slot_freed")
    assert db.session.scalars(notices).all() == []
    entry = db.session.scalars(select(WaitlistEntry)).one()
    assert entry.notices_sent == 0 and entry.active is True


def test_waitlist_tells_later_bookings_at_most_three_times(app, client):
    topic = make_topic()
    institution = make_institution()
    session = make_open_session(institution, slots=6)
    others = _others_book(client, session.slots[:5], topic, seed=100)
    later, _ = book(client, session.slots[5].id, topic)
    waiting_token = later.headers["Location"].split("/m/")[1].split("?")[0]
    with app.test_request_context():
        booking_services.join_waitlist(waiting_token)
    for token in others[:4]:
        _cancel(app, token)
    entry = db.session.scalars(select(WaitlistEntry)).one()
    assert entry.notices_sent == 3 and entry.active is False
    waiting = db.session.scalars(
        select(Booking).where(Booking.slot_id == session.slots[5].id)
    ).one()
    freed = db.session.scalars(
        select(Notification).where(
            Notification.template == "slot_freed", Notification.booking_id == waiting.id
        )
    ).all()
    assert len(freed) == 3 * 2  # SMS and e-mail, three times, then it stops


def test_manage_tokens_are_redacted_from_logs(caplog):
    assert (
        redact("GET /m/AbCdEf0123456789_-xyz?new=1 HTTP/1.1") == "GET /m/[redacted]?new=1 HTTP/1.1"
    )
    logger = logging.getLogger("werkzeug")
    logger.addFilter(RedactSecrets())
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        logger.info('"%s" %s', "GET /m/SECRETTOKEN1234567890abc HTTP/1.1", 200)
    assert "SECRETTOKEN" not in caplog.text and "[redacted]" in caplog.text
    link = "GET /resolved/12-resolved.axdq0g.jwJzbm-2L_7Zy0eXvjM3CxH2gW8?x=1 HTTP/1.1"
    assert redact(link) == "GET /resolved/[redacted]?x=1 HTTP/1.1"
    assert redact("POST /m/SECRETTOKEN1234567890abc/feedback") == "POST /m/[redacted]/feedback"


def test_admin_sees_failed_messages_and_can_send_them_again(app, client):
    from receptions.auth.models import Role
    from tests.conftest import sign_in, submit
    from tests.factories import PASSWORD, make_user

    session = make_open_session()
    book(client, session.slots[0].id, make_topic())
    failed = db.session.scalars(select(Notification).where(Notification.channel == "email")).one()
    failed.status, failed.attempts, failed.last_error = "failed", MAX_ATTEMPTS, "SMTP refused"
    db.session.commit()
    admin = make_user(Role.admin)
    sign_in(client, admin.email, PASSWORD)
    page = client.get("/admin/notifications/?status=failed").get_data(as_text=True)
    assert "SMTP refused" in page
    english = client.get("/admin/notifications/?status=failed", headers={"Accept-Language": "en"})
    assert "E-mail</td><td>Your meeting is booked" in english.get_data(as_text=True)
    response = submit(
        client,
        f"/admin/notifications/{failed.id}/retry",
        {},
        form_url="/admin/notifications/?status=failed",
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Notification, failed.id).status == "pending"
    assert client.get("/admin/notifications/?status=bogus").status_code == 400


def _fail_the_email(app, client, lang="en"):
    """Book (the SMS goes out at once), and let the e-mail fail every attempt through a closed
    port until it is marked failed, as the minutely `flask notify send` would: the booking's old
    manage token and the failed e-mail."""
    app.config["MAIL_PORT"] = _free_port()  # nothing listens there
    response, _ = book(client, make_open_session().slots[0].id, make_topic(), lang=lang)
    at = utcnow()
    for _ in range(MAX_ATTEMPTS):
        send_due(at=at)
        at += timedelta(hours=6)  # past the longest back-off
    db.session.expire_all()
    email = db.session.scalars(select(Notification).where(Notification.channel == "email")).one()
    assert email.status == "failed" and "manage_url" not in email.payload
    return _token(response), email


def _sign_in_admin(client):
    from receptions.auth.models import Role
    from tests.conftest import sign_in
    from tests.factories import PASSWORD, make_user

    sign_in(client, make_user(Role.admin).email, PASSWORD)


def _send_again(client, notification_id: int):
    from tests.conftest import submit

    return submit(
        client,
        f"/admin/notifications/{notification_id}/retry",
        {},
        form_url="/admin/notifications/?status=failed",
        headers={"Accept-Language": "en"},
        follow_redirects=True,
    )


def test_sending_a_failed_confirmation_again_gives_the_booking_a_new_working_link(
    app, client, smtp_server, tmp_path
):
    """The failed e-mail's manage link was removed (only its hash is kept): "Send again" sent it
    with nothing after "Change or cancel:". Now it issues a new link, says so first, and sends it
    by SMS too, where the old one had been delivered (it stops working)."""
    from receptions.booking.services import token_hash

    port, inbox = smtp_server
    old_token, failed = _fail_the_email(app, client)
    _sign_in_admin(client)
    english = {"Accept-Language": "en"}
    page = client.get("/admin/notifications/?status=failed", headers=english)
    text = page.get_data(as_text=True)
    assert "Its manage link was removed when it failed: sending it again gives the booking" in text
    assert "The old link had been delivered by SMS: the new one is sent by SMS too." in text
    done = _send_again(client, failed.id).get_data(as_text=True)
    assert "The message will be sent again with a new manage link." in done
    assert "The old link had been delivered by SMS" in done

    app.config["MAIL_PORT"] = port  # the relay is back
    result = app.test_cli_runner().invoke(args=["notify", "send"])
    assert "sent: 2" in result.output, result.output  # the e-mail, and the SMS with the new link
    ((_, content),) = inbox.messages
    body = email.message_from_string(content, policy=email.policy.default)
    text = body.get_body().get_content()
    link = re.search(r"Change or cancel: (\S+)", text)
    assert link, text
    new_token = link.group(1).removeprefix("http://localhost/m/")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", new_token) and new_token != old_token
    db.session.expire_all()
    booking = db.session.scalars(select(Booking)).one()
    assert booking.manage_token_hash == token_hash(new_token)  # only its hash is kept
    assert client.get(f"/m/{new_token}", headers=english).status_code == 200
    assert client.get(f"/m/{old_token}", headers=english).status_code == 404
    sms = (tmp_path / "sms.log").read_text()
    assert sms.count("Change or cancel: http://localhost/m/[redacted]") == 2
    for message in db.session.scalars(select(Notification)):
        assert message.status == "sent" and "manage_url" not in message.payload


def test_a_message_missing_a_value_is_failed_with_its_reason_not_sent_with_a_hole(
    app, client, smtp_server
):
    """A payload without a value its template shows (an older row, a bug) was sent with an empty
    space in its place; now it is failed at once, the others still go, the administrator sees
    why, and sending it again is refused while it cannot be written."""
    _, inbox = smtp_server
    response, _ = book(client, make_open_session().slots[0].id, make_topic(), lang="en")
    _cancel(app, _token(response))
    email = db.session.scalars(
        select(Notification).where(
            Notification.channel == "email", Notification.template == "booking_cancelled"
        )
    ).one()
    email.payload = {k: v for k, v in email.payload.items() if k != "reference"}
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["notify", "send"])
    assert result.exit_code == 0 and "sent: 3, retry: 0, failed: 1" in result.output, result.output
    assert len(inbox.messages) == 1 and "Your meeting is booked" in inbox.messages[0][1]
    db.session.expire_all()
    email = db.session.get(Notification, email.id)
    assert email.status == "failed" and email.attempts == 1 and "reference" in email.last_error
    _sign_in_admin(client)
    page = client.get("/admin/notifications/?status=failed", headers={"Accept-Language": "en"})
    assert "Not sent: the message could not be written from its data (" in page.get_data(
        as_text=True
    )
    refused = _send_again(client, email.id)
    assert refused.status_code == 409
    assert "cannot be written from its data" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Notification, email.id).status == "failed"


def test_a_confirmation_of_a_cancelled_booking_is_not_sent_again(app, client):
    old_token, email = _fail_the_email(app, client)
    _cancel(app, old_token)
    _sign_in_admin(client)
    refused = _send_again(client, email.id)
    assert refused.status_code == 409
    assert "The booking has been cancelled or its meeting has begun" in refused.get_data(
        as_text=True
    )
    db.session.expire_all()
    assert db.session.get(Notification, email.id).status == "failed"


def test_admin_manages_the_topic_list(app, client):
    from receptions.auth.models import Role
    from receptions.booking.models import Topic
    from tests.conftest import sign_in, submit
    from tests.factories import PASSWORD, make_user

    admin = make_user(Role.admin)
    sign_in(client, admin.email, PASSWORD)
    values = {"slug": "ecology", "name_kk": "Экология", "name_ru": "Экология", "name_en": "Ecology"}
    assert submit(client, "/admin/topics", values).status_code == 303
    again = {**values, "name_en": "Ecology and parks"}
    taken = submit(client, "/admin/topics", again, headers={"Accept-Language": "en"})
    assert taken.status_code == 422  # the form again, the message at the code, nothing lost
    text = taken.get_data(as_text=True)
    error = re.search(r'<p class="error" id="slug-error">([^<]*)</p>', text)
    assert error and error.group(1) == "A topic with this code already exists. Choose another code."
    assert 'value="ecology"' in text and 'value="Ecology and parks"' in text
    assert submit(client, "/admin/topics", {**values, "slug": "Bad Slug"}).status_code == 422
    topic = db.session.scalars(select(Topic)).one()
    retire = submit(
        client,
        f"/admin/topics/{topic.id}/active",
        {"active": "0", "confirm": "yes"},
        form_url="/admin/topics",
    )
    assert retire.status_code == 303
    db.session.expire_all()
    assert db.session.get(Topic, topic.id).active is False


def test_retiring_a_topic_says_what_it_changes_and_can_be_undone(app, client):
    """Retiring (and bringing back) a topic takes effect at once, says what it changed (not the
    bookings that have it), and the next page offers to undo it, once."""
    from receptions.auth.models import Role
    from receptions.booking.models import Topic
    from tests.conftest import sign_in, submit
    from tests.factories import PASSWORD, make_user

    topic = make_topic(name_en="Ecology")
    session = make_open_session(slots=2)
    book(client, session.slots[0].id, topic)
    admin = make_user(Role.admin)
    sign_in(client, admin.email, PASSWORD)
    english = {"Accept-Language": "en"}

    def toggle(active: str):
        return submit(
            client,
            f"/admin/topics/{topic.id}/active",
            {"active": active, "confirm": "yes"},
            form_url="/admin/topics",
            headers=english,
            follow_redirects=True,
        )

    retired = toggle("0").get_data(as_text=True)
    assert "“Ecology” is retired: new bookings and walk-ins can no longer choose it." in retired
    assert "Existing bookings and questions keep it" in retired
    assert "Undo: bring back “Ecology”" in retired
    db.session.expire_all()
    assert db.session.get(Topic, topic.id).active is False
    assert db.session.scalars(select(Booking)).one().topic_id == topic.id  # the booking keeps it
    again = client.get("/admin/topics", headers=english).get_data(as_text=True)
    assert "Undo:" not in again and "is retired" not in again  # said once
    back = toggle("1").get_data(as_text=True)  # the undo button's form
    assert "“Ecology” is offered again on the booking and walk-in forms." in back
    assert "Undo: retire “Ecology” again" in back
    db.session.expire_all()
    assert db.session.get(Topic, topic.id).active is True


def test_with_redis_an_rq_worker_delivers_the_outbox(
    app, client, db_url, tmp_path, monkeypatch, own_rq_queue
):
    from rq import SimpleWorker

    from receptions.notify import worker

    redis_url, queue = own_rq_queue(worker, "QUEUE")
    app.config["REDIS_URL"] = redis_url
    app.config["NOTIFY_SYNC"] = True
    # The worker builds its own app from the environment, as `rq worker` would.
    monkeypatch.setenv("ASHYQ_ENV", "testing")
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("MAIL_BACKEND", "log")
    monkeypatch.setenv("MAIL_LOG_PATH", str(tmp_path / "mail.log"))
    monkeypatch.setenv("SMS_LOG_PATH", str(tmp_path / "sms-rq.log"))
    session = make_open_session()
    book(client, session.slots[0].id, make_topic())
    assert queue.count == 1
    assert db.session.scalars(select(Notification.status)).all() == ["pending", "pending"]
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    db.session.rollback()
    assert sorted(db.session.scalars(select(Notification.status))) == ["sent", "sent"]
    assert "+7 701 ••• •• 67" in (tmp_path / "sms-rq.log").read_text()


def test_production_leaves_delivery_to_the_rq_worker_or_the_send_job(monkeypatch, db_url):
    """A web worker never sends: without Redis the minutely `flask notify send` delivers."""
    from receptions import create_app

    monkeypatch.delenv("NOTIFY_SYNC", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings = {
        "ENV_NAME": "production",
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SECRET_KEY": "x" * 40,
        "IIN_HASH_KEY": "y" * 40,
        "PUBLIC_URL": "https://ashyq-esik.kz",
    }
    production = create_app(settings)
    assert production.config["NOTIFY_SYNC"] is False
    assert production.config["NOTIFY_SWEEP_SECONDS"] == 0  # no sender thread either
    monkeypatch.setenv("NOTIFY_SYNC", "1")
    assert create_app(settings).config["NOTIFY_SYNC"] is True


def _start_flask_run(env: dict[str, str], log_path) -> tuple[subprocess.Popen, str]:
    """`flask run`, as a demo serves the app (without the debugger), on a free port; the process
    and its address once it answers."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    run = ["run", "--no-reload", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "receptions", *run],
        cwd=ROOT,
        env={**env, "PUBLIC_URL": base},
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2).read()
            return server, base
        except OSError:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "flask run did not start"
            time.sleep(0.2)


def _cancel_and_reset(base: str, token: str) -> int:
    """Cancel over HTTP as a browser would, then close the connection with a reset as soon as
    the whole response has arrived (a client that gives up its socket at once): the status."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    form = opener.open(f"{base}/m/{token}/cancel", timeout=10)
    csrf = csrf_from(form.read().decode())
    cookie = form.headers["Set-Cookie"].split(";")[0]
    body = urllib.parse.urlencode({"csrf_token": csrf, "confirm": "yes"}).encode()
    host = base.removeprefix("http://")
    head = (
        f"POST /m/{token}/cancel HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        "\r\n"
    )
    with socket.create_connection(("127.0.0.1", int(host.split(":")[1])), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(65536)
        headers, _, content = response.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", headers).group(1))
        while len(content) < length:
            content += sock.recv(65536)
        # SO_LINGER 0: close() sends RST, not FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return int(headers.split()[1])


@pytest.mark.realtime  # a real `flask run`, whose sender follows the real clock
def test_the_development_server_sends_what_a_reset_connection_left_pending(app, db_url, tmp_path):
    """Outside production a change's messages are sent right after the response, from its close
    callback. Werkzeug's server skips that callback when the client resets the connection just
    after the response (draining the socket raises before `close()`; with `--debug` the
    debugger's middleware happens to close it first): the cancellations' messages stayed
    pending, never attempted, as nothing else sends in development. The web process now also
    delivers whatever is pending and due every few seconds (NOTIFY_SWEEP_SECONDS)."""
    from tests.hostile import booking_with_token

    session = make_open_session(slots=3)
    tokens = [
        booking_with_token(slot, email=f"citizen{n}@example.kz")[1]
        for n, slot in enumerate(session.slots)
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "NOTIFY_SYNC")}
    env.update(
        ASHYQ_ENV="development",
        DATABASE_URL=db_url,
        SECRET_KEY=app.config["SECRET_KEY"],
        IIN_HASH_KEY=app.config["IIN_HASH_KEY"],
        MAIL_BACKEND="log",
        MAIL_LOG_PATH=str(tmp_path / "mail.log"),
        SMS_LOG_PATH=str(tmp_path / "sms.log"),
        NOTIFY_SWEEP_SECONDS="0.5",
    )
    server, base = _start_flask_run(env, tmp_path / "flask-run.log")
    try:
        assert [_cancel_and_reset(base, token) for token in tokens] == [303, 303, 303]
        cancellations = select(Notification.status, Notification.attempts).where(
            Notification.template == "booking_cancelled"
        )
        deadline = time.monotonic() + 20
        while True:
            db.session.rollback()
            rows = db.session.execute(cancellations).all()
            if all(row.status == "sent" for row in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(rows) == [("sent", 1)] * 6, (rows, (tmp_path / "flask-run.log").read_text())
    assert (tmp_path / "mail.log").read_text().count("@example.kz") == 3


def test_messages_give_the_address_in_the_readers_language_or_the_room_staff_typed(app, client):
    """A schedule without a room shows the institution's address in each reader's language (it
    was the Russian one in every message); a room staff typed is shown as typed."""
    from tests.factories import make_iin

    topic = make_topic()
    institution = make_institution(
        address_kk="Атырау қ., Сәтбаев даңғылы, 41", address_ru="г. Атырау, пр. Сатпаева, 41"
    )
    session = make_open_session(institution, slots=4, location="")

    def confirmation_text(slot_index: int, lang: str, n: int) -> str:
        response, _ = book(
            client,
            session.slots[slot_index].id,
            topic,
            lang=lang,
            iin=make_iin(400 + n),
            phone=f"+770155504{n:02d}",
        )
        assert response.status_code == 303
        sms = select(Notification).where(Notification.channel == "sms")
        with app.test_request_context():
            return render(db.session.scalars(sms.order_by(Notification.id.desc())).first()).body

    kk, ru, en = (confirmation_text(n, lang, n) for n, lang in enumerate(("kk", "ru", "en")))
    assert "Сәтбаев даңғылы" in kk and "пр. Сатпаева" not in kk
    assert "пр. Сатпаева" in ru and "пр. Сатпаева" in en  # no English address: the Russian one
    session.schedule.location = "Кабинет 12"
    db.session.commit()
    assert "Кабинет 12" in confirmation_text(3, "kk", 3)


def test_the_manage_page_says_the_booking_is_on_the_waitlist_instead_of_offering_it_again(
    app, client
):

    topic = make_topic()
    session = make_open_session(slots=4)
    others = _others_book(client, session.slots[:3], topic, seed=500)
    later, _ = book(client, session.slots[3].id, topic, lang="en")
    token = _token(later)
    offer = "Tell me if an earlier time frees up"

    def page() -> str:
        return client.get(f"/m/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)

    assert offer in page() and "You are on the waitlist" not in page()
    assert _join_waitlist(client, token).status_code == 303
    assert offer not in page()
    assert "at most 3 more times" in page()
    _cancel(app, others[0])
    assert "at most 2 more times" in page()
    with force_locale("ru"):
        russian = client.get(f"/m/{token}", headers={"Accept-Language": "ru"}).get_data(
            as_text=True
        )
    assert "ещё не более 2 раз" in russian


def test_the_waitlist_is_offered_and_joined_only_without_an_earlier_free_time(app, client):
    """While an earlier time of the schedule is free, the manage page offers to move there
    instead of the waitlist, and joining is refused with that reason (nothing stored); once the
    earlier times are taken, the waitlist is offered and joined."""
    topic = make_topic()
    session = make_open_session(slots=3)
    later, _ = book(client, session.slots[2].id, topic, lang="en")
    token = _token(later)
    page = client.get(f"/m/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Tell me if an earlier time frees up" not in page
    assert "An earlier time is free now (" in page and "“Move to another time”" in page
    refused = _join_waitlist(client, token)
    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert "The waitlist is for when no earlier time is free." in text and 'role="alert"' in text
    assert db.session.scalars(select(WaitlistEntry)).all() == []
    _others_book(client, session.slots[:2], topic, seed=600)
    page = client.get(f"/m/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Tell me if an earlier time frees up" in page and "An earlier time is free" not in page
    assert _join_waitlist(client, token).status_code == 303
    assert db.session.scalars(select(WaitlistEntry)).one().active is True


def _leave_waitlist(client, token, csrf=True):

    if not csrf:
        return client.post(f"/m/{token}/waitlist/leave", data={"confirm": "yes"})
    return submit(
        client,
        f"/m/{token}/waitlist/leave",
        {"confirm": "yes"},
        form_url=f"/m/{token}/cancel",  # a page that always has a form (for its CSRF token)
        headers={"Accept-Language": "en"},
        follow_redirects=True,
    )


def test_a_citizen_leaves_the_waitlist_from_the_manage_page_and_may_join_again(app, client):
    """Leaving is a button on the manage page (POST with CSRF, never a GET), says so, stops the
    notices at once, and keeps the count of notices sent for a later rejoin."""
    topic = make_topic()
    session = make_open_session(slots=4)
    others = _others_book(client, session.slots[:3], topic, seed=700)
    later, _ = book(client, session.slots[3].id, topic, lang="en")
    token = _token(later)
    assert _join_waitlist(client, token).status_code == 303
    _cancel(app, others[0])  # one notice
    _others_book(client, session.slots[:1], topic, seed=720)  # the freed time taken again
    page = client.get(f"/m/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "at most 2 more times" in page and "Leave the waitlist" in page
    assert f'action="/m/{token}/waitlist/leave"' in page

    # A link followed by a mail scanner or typed in changes nothing; nor does a forged form.
    assert client.get(f"/m/{token}/waitlist/leave").status_code == 405
    assert _leave_waitlist(client, token, csrf=False).status_code == 400
    csrf = csrf_from(page)
    forged = client.post("/m/" + "A" * 43 + "/waitlist/leave", data={"csrf_token": csrf})
    assert forged.status_code == 404
    assert db.session.scalars(select(WaitlistEntry)).one().active is True

    left = _leave_waitlist(client, token)
    assert left.status_code == 200
    text = left.get_data(as_text=True)
    assert "You have left the waitlist: we will not tell you about earlier times." in text
    assert "You are on the waitlist" not in text and "Tell me if an earlier time frees up" in text
    db.session.expire_all()
    entry = db.session.scalars(select(WaitlistEntry)).one()
    assert entry.active is False and entry.notices_sent == 1

    waiting = db.session.scalars(
        select(Booking).where(Booking.slot_id == session.slots[3].id)
    ).one()
    notices = select(Notification).where(
        Notification.template == "slot_freed", Notification.booking_id == waiting.id
    )
    sent_before = len(db.session.scalars(notices).all())
    _cancel(app, others[1])  # an earlier time frees up: no notice to whoever left
    db.session.expire_all()
    assert len(db.session.scalars(notices).all()) == sent_before
    assert db.session.scalars(select(WaitlistEntry)).one().notices_sent == 1
    assert _leave_waitlist(client, token).status_code == 200  # a second press: no harm

    _others_book(client, [session.slots[1]], topic, seed=740)
    assert _join_waitlist(client, token).status_code == 303  # rejoining counts on from 1
    db.session.expire_all()
    entry = db.session.scalars(select(WaitlistEntry)).one()
    assert entry.active is True and entry.notices_sent == 1
    page = client.get(f"/m/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "at most 2 more times" in page


def test_the_hourly_job_queues_reminders_with_links_to_the_public_address(app, client):
    """`flask notify remind` runs with no request (cron): the messages it queues carry absolute
    links built on PUBLIC_URL. It failed with "Unable to build URLs outside an active request"
    as soon as anything was due, and queued nothing."""
    app.config["PUBLIC_URL"] = "https://ashyq-esik.kz/"
    session = make_open_session(starts_in_hours=20)
    book(client, session.slots[0].id, make_topic())
    booking = db.session.scalars(select(Booking)).one()
    booking.created_at = booking.booked_at = booking.booked_at - timedelta(days=3)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["notify", "remind"])
    assert result.exit_code == 0, result.output
    assert "reminders queued: 1" in result.output
    reminders = db.session.scalars(
        select(Notification).where(Notification.template == "reminder")
    ).all()
    assert len(reminders) == 2
    for reminder in reminders:
        assert reminder.payload["status_url"] == f"https://ashyq-esik.kz/status/{booking.reference}"


def _texts(app, booking_id: int, template: str) -> dict[str, str]:
    """The message `template` of a booking as each channel's reader gets it."""
    messages = db.session.scalars(
        select(Notification).where(
            Notification.template == template, Notification.booking_id == booking_id
        )
    ).all()
    with app.test_request_context():
        return {message.channel: render(message).body for message in messages}


def test_messages_about_the_meeting_link_where_to_act_on_the_public_address(app, client):
    """The reminder, the waitlist notice and the cancelled session link the institution's page
    (and the reminder's e-mail the status page), on PUBLIC_URL: they said to choose another time
    or to open an earlier message, with no link. An SMS carries one link."""
    from flask_login import login_user

    from receptions.auth.models import Role
    from receptions.schedules.services import cancel_session
    from tests.factories import make_user

    app.config["PUBLIC_URL"] = "https://ashyq-esik.kz"
    topic = make_topic()
    institution = make_institution()
    session = make_open_session(institution, slots=3, starts_in_hours=20)
    freed, _taken = _others_book(client, session.slots[:2], topic, seed=900)
    later, _ = book(client, session.slots[2].id, topic, lang="en")
    assert _join_waitlist(client, _token(later)).status_code == 303
    for booking in db.session.scalars(select(Booking)):
        booking.created_at = booking.booked_at = booking.booked_at - timedelta(days=3)
    db.session.commit()
    waiting = db.session.scalars(
        select(Booking).where(Booking.slot_id == session.slots[2].id)
    ).one()
    page = f"https://ashyq-esik.kz/institutions/{institution.id}"
    status = f"https://ashyq-esik.kz/status/{waiting.reference}"

    assert app.test_cli_runner().invoke(args=["notify", "remind"]).exit_code == 0
    reminder = _texts(app, waiting.id, "reminder")
    assert f"The institution's page: {page}\n" in reminder["email"]
    assert f"Follow the status: {status}\n" in reminder["email"]
    assert f"The institution's page: {page}\n" in reminder["sms"] and status not in reminder["sms"]
    for text in reminder.values():
        assert "Where: " in text and "Reference: " + waiting.reference in text

    _cancel(app, freed)
    for text in _texts(app, waiting.id, "slot_freed").values():
        assert f"move your booking {waiting.reference}: open the link in your confirmation" in text
        assert f"The institution's page: {page}\n" in text

    head = make_user(Role.head, institution=institution)
    with app.test_request_context():
        login_user(head)
        cancel_session(head, session.id, "Аварийное отключение электричества")
    for text in _texts(app, waiting.id, "session_cancelled").values():
        assert f"Choose another time on the institution's page: {page}\n" in text
    kept = db.session.scalars(
        select(Notification).where(
            Notification.booking_id == waiting.id,
            Notification.template.in_(("reminder", "slot_freed", "session_cancelled")),
        )
    ).all()
    assert len(kept) == 6
    for message in kept:  # absolute links on PUBLIC_URL, whichever host the test client used
        assert message.payload["institution_url"] == page, message.template
        assert "localhost" not in str(message.payload)


@pytest.mark.parametrize(
    ("lang", "rate", "answer"),
    [
        ("kk", "Кездесуді бағалаңыз", "«Иә» немесе «Жоқ» деп жауап беріңіз"),
        ("ru", "Оцените встречу", "Ответьте «да» или «нет»"),
        ("en", "Rate the meeting", "Answer yes or no"),
    ],
)
def test_the_feedback_request_and_the_resolution_check_link_their_answer(
    app, client, tmp_path, lang, rate, answer
):
    """Each links the page of its one answer (booking.answer_links), not the booking page "in
    the first message"; once sent, the link is dropped from the outbox and the log channels
    redact it, as the manage link."""
    from receptions.booking.answer_links import Purpose, booking_id_of
    from tests.hostile import booking_with_token, outcome_long_ago

    app.config.update(
        PUBLIC_URL="https://ashyq-esik.kz", MAIL_BACKEND="log", MAIL_LOG_PATH=str(tmp_path / "m")
    )
    session = make_open_session(starts_in_hours=-3)
    booking, _token = booking_with_token(session.slots[0], email="saule@example.kz")
    booking.locale = lang
    outcome_long_ago(booking)  # attended, with an outcome a month ago
    assert booking_services.queue_feedback_requests() == 1
    assert booking_services.queue_resolution_checks() == 1
    links = {}
    for template, label, purpose in (
        ("feedback_request", rate, Purpose.feedback),
        ("resolution_check", answer, Purpose.resolved),
    ):
        texts = _texts(app, booking.id, template)
        assert set(texts) == {"sms", "email"}
        for text in texts.values():
            found = re.search(f"{label}: https://ashyq-esik\\.kz/{purpose.value}/(\\S+)\n", text)
            assert found, text
            assert booking_id_of(found[1], purpose) == booking.id
            assert "booking page" not in text and "first message" not in text
            links[purpose] = found[1]
    assert app.test_cli_runner().invoke(args=["notify", "send"]).exit_code == 0
    db.session.expire_all()
    for message in db.session.scalars(select(Notification)):
        assert message.status == "sent" and "answer_url" not in message.payload
    logged = (tmp_path / "m").read_text() + (tmp_path / "sms.log").read_text()
    assert "/feedback/[redacted]" in logged and "/resolved/[redacted]" in logged
    assert not any(link in logged for link in links.values())


def test_a_failed_feedback_request_sent_again_carries_its_answer_link(
    app, client, smtp_server
):
    """The answer link is dropped from a message that failed, like the manage link; "Send
    again" puts the same signed link back (nothing to issue: it is not stored) and leaves the
    booking's manage link as it was."""
    from receptions.booking.answer_links import Purpose, booking_id_of
    from tests.hostile import booking_with_token, outcome_long_ago

    port, inbox = smtp_server
    app.config.update(PUBLIC_URL="https://ashyq-esik.kz", MAIL_PORT=_free_port())
    session = make_open_session(starts_in_hours=-3)
    booking, token = booking_with_token(session.slots[0], email="saule@example.kz")
    booking.locale = "en"
    outcome_long_ago(booking)
    manage_hash = booking.manage_token_hash
    assert booking_services.queue_feedback_requests() == 1
    at = utcnow()
    for _ in range(MAX_ATTEMPTS):
        send_due(at=at)
        at += timedelta(hours=6)
    db.session.expire_all()
    failed = db.session.scalars(
        select(Notification).where(
            Notification.channel == "email", Notification.template == "feedback_request"
        )
    ).one()
    assert failed.status == "failed" and "answer_url" not in failed.payload
    _sign_in_admin(client)
    page = client.get("/admin/notifications/?status=failed", headers={"Accept-Language": "en"})
    assert "Its manage link was removed" not in page.get_data(as_text=True)
    done = _send_again(client, failed.id)
    assert done.status_code == 200
    assert "The message will be sent again." in done.get_data(as_text=True)
    app.config["MAIL_PORT"] = port
    assert app.test_cli_runner().invoke(args=["notify", "send"]).exit_code == 0
    ((_, content),) = inbox.messages
    text = email.message_from_string(content, policy=email.policy.default).get_body()
    found = re.search(r"https://ashyq-esik\.kz/feedback/(\S+)", text.get_content())
    assert found and booking_id_of(found[1], Purpose.feedback) == booking.id
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).manage_token_hash == manage_hash
    assert client.get(f"/m/{token}").status_code == 200


def test_links_in_messages_ignore_the_host_the_request_came_by(app, client):
    """A request sent with a forged Host header must not put the citizen's manage link on
    another site: the link is built on PUBLIC_URL."""
    app.config["PUBLIC_URL"] = "https://ashyq-esik.kz"
    slot = make_open_session().slots[0]
    topic = make_topic()
    elsewhere = "http://evil.example"
    html = client.get(f"/book/{slot.id}", base_url=elsewhere).get_data(as_text=True)
    from tests.conftest import csrf_from
    from tests.integration.test_booking import IIN, form_key

    response = client.post(
        f"/book/{slot.id}",
        base_url=elsewhere,
        data={
            "csrf_token": csrf_from(html),
            "idempotency_key": form_key(html),
            "full_name": "Сәуле Ержанқызы",
            "iin": IIN,
            "phone": "8 (701) 123-45-67",
            "email": "saule@example.kz",
            "locale": "kk",
            "topic_id": str(topic.id),
            "question": "Жылу қашан беріледі?",
            "consent": "y",
        },
    )
    assert response.status_code == 303
    token = response.headers["Location"].split("/m/")[1].split("?")[0]
    confirmations = db.session.scalars(
        select(Notification).where(Notification.template == "booking_confirmed")
    ).all()
    assert confirmations
    for message in confirmations:
        assert message.payload["manage_url"] == f"https://ashyq-esik.kz/m/{token}"
        assert message.payload["status_url"].startswith("https://ashyq-esik.kz/status/")


@pytest.mark.parametrize(
    "public_url", [None, "", "ashyq-esik.kz", "ftp://ashyq-esik.kz", "https://ashyq-esik.kz/?a=1"]
)
def test_production_refuses_to_start_without_a_usable_public_address(db_url, public_url):
    from receptions import create_app

    settings = {
        "ENV_NAME": "production",
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SECRET_KEY": "x" * 40,
        "IIN_HASH_KEY": "y" * 40,
        "PUBLIC_URL": public_url,
    }
    with pytest.raises(RuntimeError, match="PUBLIC_URL"):
        create_app(settings)
    served_below_the_root = create_app({**settings, "PUBLIC_URL": "https://gov.kz/ashyq"})
    with served_below_the_root.app_context():
        from receptions.urls import public_url as build

        assert build("booking.status", reference="ATY-7K3M9Q") == (
            "https://gov.kz/ashyq/status/ATY-7K3M9Q"
        )


@pytest.mark.parametrize(
    ("template", "old_wording"),
    [
        ("reminder", "Follow the status: https://ashyq-esik.kz/status/"),
        ("slot_freed", "open the link in your confirmation message"),
        ("session_cancelled", "Please choose another time on the institution's page."),
        ("feedback_request", "Please rate the meeting on your booking page."),
        ("resolution_check", "the link in your first message"),
    ],
)
def test_a_message_queued_before_the_links_were_added_is_sent_in_its_old_wording(
    app, client, template, old_wording
):
    """Messages waiting in the outbox when the links came (no institution or answer link in
    their payload) are still written, not failed by the strict templates."""
    app.config["PUBLIC_URL"] = "https://ashyq-esik.kz"
    book(client, make_open_session().slots[0].id, make_topic(), lang="en")
    confirmation = db.session.scalars(select(Notification)).first()
    payload = {
        k: v for k, v in confirmation.payload.items() if k not in ("manage_url", "answer_url")
    }
    payload.pop("institution_url", None)
    extra = {"slot_freed": {"freed_at": payload["starts_at"]}, "session_cancelled": {"reason": ""}}
    message = Notification(
        channel="email",
        recipient="saule@example.kz",
        template=template,
        locale="en",
        payload={**payload, **extra.get(template, {})},
        booking_id=confirmation.booking_id,
    )
    text = render(message).body
    assert old_wording in text, text
