"""Helpers for the hostile-input, header and secrecy tests: database snapshots, bookings whose
manage link is known, live-markup detection and same-origin redirect checks."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from sqlalchemy import select

from receptions.extensions import db
from tests.conftest import csrf_from, sign_in
from tests.factories import PASSWORD, make_booking, make_iin, make_user

# Script and attribute-breaking payloads; `{tag}` names the field so a leak says where it came from.
XSS_TEMPLATE = "'\"><script>alert('{tag}')</script><img src=x onerror=alert('{tag}')>"
SQL_METACHARACTERS = "'; DROP TABLE booking; -- 100% _x_ \\"


def xss(tag: str) -> str:
    return XSS_TEMPLATE.format(tag=tag)


def escaped_marker(tag: str) -> str:
    """What the payload of `tag` looks like once Jinja has escaped it."""
    return f"&lt;script&gt;alert(&#39;{tag}&#39;)&lt;/script&gt;"


def table_snapshot() -> dict[str, tuple[int, str]]:
    """Row count and a checksum of the rows of every table in the metadata, from a fresh snapshot."""
    db.session.rollback()
    snapshot = {}
    for table in db.metadata.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        rows = db.session.execute(select(table).order_by(*order)).all()
        digest = hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()
        snapshot[table.name] = (len(rows), digest)
    db.session.rollback()
    return snapshot


def changed_tables(before: dict[str, tuple[int, str]]) -> list[str]:
    after = table_snapshot()
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


def booking_with_token(slot: Any, **values: Any) -> tuple[Any, str]:
    """A booking (tests.factories.make_booking) whose manage link is known: its token is returned."""
    from receptions.booking.services import token_hash

    booking = make_booking(slot, **values)
    token = secrets.token_urlsafe(32)
    booking.manage_token_hash = token_hash(token)
    db.session.commit()
    return booking, token


def send_booking_form(
    client: FlaskClient,
    slot_id: int,
    topic: Any,
    *,
    opened_for: int | None = None,
    headers: dict[str, str] | None = None,
    **fields: str,
) -> Any:
    """Open the booking form (of `opened_for`, when the slot's own form would not open) and send
    it for `slot_id` as a citizen; the response."""
    page = client.get(f"/book/{opened_for or slot_id}").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', page).group(1)
    return client.post(
        f"/book/{slot_id}",
        data={
            "csrf_token": csrf_from(page),
            "idempotency_key": key,
            "iin": make_iin(31),
            "phone": "+77011234567",
            "locale": "ru",
            "topic_id": str(topic.id),
            "consent": "y",
            **fields,
        },
        headers=headers,
    )


def book_over_http(client: FlaskClient, slot: Any, topic: Any, **fields: str) -> tuple[str, Any]:
    """Book through the public form as a citizen; returns the manage token and the booking."""
    from receptions.booking.models import Booking

    response = send_booking_form(client, slot.id, topic, **fields)
    assert response.status_code == 303, response.status_code
    token = response.headers["Location"].split("/m/")[1].split("?")[0]
    db.session.rollback()
    return token, db.session.scalars(select(Booking).order_by(Booking.id.desc())).first()


def outcome_long_ago(booking: Any, outcome: str = "resolved", days: int = 31) -> Any:
    """The booking attended, with one question whose outcome was recorded `days` ago, so the
    manage page asks "was it really resolved?"."""
    from receptions.visits.models import Question, Visit

    session = booking.slot.session
    booking.status = "attended"
    visit = Visit(
        session_id=session.id,
        institution_id=session.institution_id,
        booking_id=booking.id,
        citizen_name=booking.citizen_name,
        at=session.starts_at,
    )
    db.session.add(visit)
    db.session.flush()
    question = Question(
        visit_id=visit.id,
        institution_id=session.institution_id,
        topic_id=booking.topic_id,
        summary=booking.question,
        outcome=outcome,
        outcome_at=datetime.now(UTC) - timedelta(days=days),
    )
    db.session.add(question)
    db.session.commit()
    return question


def signed_in_client(app: Any, role: Any, **scope: Any) -> tuple[FlaskClient, Any]:
    """A client of its own (one identity per client) signed in as a new user with `role`."""
    user = make_user(role, **scope)
    client = app.test_client()
    response = sign_in(client, user.email, PASSWORD)
    assert response.status_code in (302, 303), response.status_code
    return client, user


def fresh_csrf(client: FlaskClient) -> str:
    """A CSRF token for the client's session (Flask-WTF tokens are per session, not per form)."""
    return csrf_from(client.get("/auth/sign-in").get_data(as_text=True))


class _LiveMarkup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag == "script" and not dict(attrs).get("src"):
            self.found.append("<script> without src")


def live_markup(html: str) -> list[str]:
    """Event-handler attributes, javascript: links and inline scripts: what an injection needs."""
    parser = _LiveMarkup()
    parser.feed(html)
    return parser.found


CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # browsers drop tabs and newlines


def is_same_origin_redirect(location: str) -> bool:
    """A Location a browser resolves on this site, whatever it strips (tabs, newlines, spaces)."""
    if CONTROL.search(location):
        return False
    parts = urlsplit(location)
    if parts.scheme not in ("", "http", "https"):
        return False
    if parts.netloc not in ("", "localhost"):
        return False
    if not parts.netloc:
        return location.startswith("/") and not location.startswith(("//", "/\\"))
    return True
