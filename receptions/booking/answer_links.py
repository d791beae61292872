"""Signed links that let a citizen give one answer about one booking, sent in the messages
that ask for it: the manage link is not stored, so no later message can carry it."""

from __future__ import annotations

import enum
from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from ..errors import DomainError
from ..urls import public_url, whole_number

# A salt of their own: no other value the site signs with SECRET_KEY (the session cookie, the
# CSRF token) is taken for one of these links, nor one of these for them.
SALT = "ashyq-esik.booking-answer-link"
LONGEST_LINK = 120  # far longer than any link this signer makes


class Purpose(enum.StrEnum):
    """What a link lets its holder do, each on a page of its own (the endpoint)."""

    feedback = "feedback"  # rate the meeting, once
    resolved = "resolved"  # say whether the question was really resolved, once

    @property
    def endpoint(self) -> str:
        return f"booking.{self.value}_by_link"


class InvalidAnswerLink(DomainError):
    """Forged, cut short, or signed for the other answer (said as a bad manage link is)."""

    status_code = 404
    message = _l("This booking link is not valid. Check that you copied the whole link.")


class AnswerLinkExpired(DomainError):
    status_code = 410
    message = _l(
        "This link has expired. You can still answer on your booking page: "
        "open the link in your confirmation message."
    )


def _signer() -> TimestampSigner:
    config = current_app.config
    # Older keys still check a link (as Flask's session does), the newest signs: a link sent
    # before a change of SECRET_KEY keeps working while the old key is kept as a fallback.
    keys = [*(config.get("SECRET_KEY_FALLBACKS") or ()), config["SECRET_KEY"]]
    return TimestampSigner(keys, salt=SALT)


def max_age() -> timedelta:
    return timedelta(days=int(current_app.config["ANSWER_LINK_DAYS"]))


def answer_link(booking_id: int, purpose: Purpose) -> str:
    """The signed part of the link: the booking's id and the purpose, and when it was signed
    (no name, IIN, phone or reference; not the manage token)."""
    return _signer().sign(f"{booking_id}-{purpose.value}").decode()


def answer_url(booking_id: int, purpose: Purpose) -> str:
    """The absolute link, on PUBLIC_URL, of the page that records this one answer."""
    return public_url(purpose.endpoint, link=answer_link(booking_id, purpose))


def booking_id_of(link: str, purpose: Purpose) -> int:
    """The booking a link was signed for, if it was signed here for `purpose` and has not
    expired; else InvalidAnswerLink (404) or AnswerLinkExpired (410)."""
    if not link or len(link) > LONGEST_LINK:
        raise InvalidAnswerLink()
    try:
        value = _signer().unsign(link, max_age=max_age().total_seconds())
    except SignatureExpired as expired:
        # Signed here (the signature is checked before the age): an old link of this purpose
        # is said to be expired; one for the other answer is not a link of this page at all.
        _booking_id(expired.payload, purpose)
        raise AnswerLinkExpired() from expired
    except BadSignature as forged:
        raise InvalidAnswerLink() from forged
    return _booking_id(value, purpose)


def _booking_id(value: object, purpose: Purpose) -> int:
    text = value.decode() if isinstance(value, bytes) else ""
    number, dash, signed_purpose = text.partition("-")
    booking_id = whole_number(number)
    if booking_id is None or not dash or signed_purpose != purpose.value:
        raise InvalidAnswerLink()
    return booking_id
