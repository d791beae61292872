"""Booking rules: no slot past its capacity, per-citizen limits, manage links, status history."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    not_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, joinedload

from scheduling.rules import BookingStatus as WindowStatus
from scheduling.rules import BookingWindow, CancellationPolicy, booking_status

from ..clock import now as clock_now
from ..database import read_only_request, utcnow, write_transaction
from ..errors import Conflict, DomainError
from ..extensions import db
from ..geography.models import District, Region
from ..i18n import current_language, localized
from ..institutions.models import Institution, InstitutionNames
from ..notify.models import Channel, DeliveryStatus, Notification
from ..notify.services import (
    add_to_outbox,
    deliver_after_commit,
    enqueue_rows,
    outbox_row,
    templates_with,
)
from ..schedules.models import Schedule, ScheduledSession, SessionStatus, Slot
from ..schedules.queries import window_of
from ..schedules.services import settle_if_unheld
from ..urls import public_url
from . import identity
from .answer_links import InvalidAnswerLink, Purpose, answer_url, booking_id_of
from .models import (
    ACTIVE_STATUSES,
    Booking,
    BookingStatus,
    Feedback,
    StatusEvent,
    Topic,
    WaitlistEntry,
)

log = logging.getLogger(__name__)
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L
CONSENT_VERSION = "2026-11"
WAITLIST_MAX_NOTICES = 3


class SlotUnavailable(DomainError):
    """The slot cannot be booked (any more); the page offers the nearest free ones."""

    status_code = 409
    # Not "just taken" nor "by someone else": the one who took it may be the reader, on another
    # device or before pressing Back (the page says so when this browser booked it).
    message = _l("Sorry, this time is already taken. Please choose another one.")

    def __init__(
        self,
        message: str | None = None,
        *,
        slot_id: int | None = None,
        schedule_id: int | None = None,
        institution_id: int | None = None,
        window: BookingWindow | None = None,
    ) -> None:
        super().__init__(message)
        self.taken = message is None  # its seats are gone (else the message says why not)
        self.slot_id, self.schedule_id, self.institution_id = slot_id, schedule_id, institution_id
        self.window = window  # the schedule's booking window, when the refusal read it
        # The nearest free times, when the read that refused the slot found them too.
        self.free_times: list[FreeSlot] | None = None
        # When booking opens, for a time whose booking has not opened yet, and the region's
        # zone to say it in.
        self.opens_at: datetime | None = None
        self.timezone: str | None = None


class SlotNotFound(DomainError):
    status_code = 404
    message = _l("This time does not exist. Please choose one from the list.")


class BookingLimitReached(DomainError):
    status_code = 409
    message = _l(
        "You already have a booking at this institution this month. "
        "Cancel it first if you need another time."
    )

    def __init__(self, message: str | None = None, *, reference: str | None = None) -> None:
        super().__init__(message)
        # The booking held, named only to a sender who gave its IIN and its phone number.
        self.reference = reference


class TopicUnavailable(DomainError):
    """The form's topic is not (or no longer) one of the active topics: the form is shown again
    with this message on its topic field."""

    status_code = 422
    message = _l("Choose a topic from the list.")


class TopicCodeTaken(DomainError):
    """A new topic's code is another topic's: the form is shown again, the message at the code."""

    status_code = 422
    message = _l("A topic with this code already exists. Choose another code.")


class InvalidManageLink(DomainError):
    status_code = 404
    message = _l("This booking link is not valid. Check that you copied the whole link.")


class NotAnOption(DomainError):
    """A chosen time that this booking cannot move to (gone, or of another schedule)."""

    status_code = 422
    message = _l("You can only move to another time of the same schedule.")


class WaitlistUsedUp(DomainError):
    status_code = 409
    message = _l(
        "We have already told you three times about earlier times for this schedule, "
        "so we will not send more."
    )


class EarlierTimeFree(DomainError):
    """The waitlist tells of earlier times freeing up: while one is free, moving is the answer."""

    status_code = 409
    message = _l(
        "An earlier time is free now: you can move your booking to it with “%(move)s”. "
        "The waitlist is for when no earlier time is free.",
        move=_l("Move to another time"),
    )


class ManageClosed(DomainError):
    status_code = 409
    message = _l("This booking can no longer be changed online: the deadline has passed.")


class BookingClosed(DomainError):
    """Cancelled (by the citizen or the institution), or already attended or missed."""

    status_code = 409
    message = _l("This booking is already cancelled or closed.")


@dataclass(frozen=True)
class BookingRequest:
    slot_id: int
    idempotency_key: str
    citizen_name: str
    iin: str
    phone: str
    email: str
    locale: str
    topic_id: int
    question: str
    accessibility: list[str]
    accessibility_note: str


@dataclass(frozen=True)
class BookingResult:
    reference: str
    token: str
    repeated: bool = False


# --- secrets -------------------------------------------------------------------------------------


def _keyed(purpose: bytes, idempotency_key: str) -> bytes:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, purpose + idempotency_key.encode(), hashlib.sha256).digest()


def manage_token_for(idempotency_key: str) -> str:
    """The manage token is derived from the form's one-time key, so a double submission of the
    same form leads to the same booking and the same link. Neither the key nor the token is
    stored (only `idempotency_hash` and `token_hash`, one-way), so no database dump, with or
    without SECRET_KEY, rebuilds a link: the raw key lives only in the citizen's form."""
    return base64.urlsafe_b64encode(_keyed(b"manage:", idempotency_key)).rstrip(b"=").decode()


def idempotency_hash(idempotency_key: str) -> str:
    """What is stored to recognise a second submission of the same form."""
    return _keyed(b"idempotency:", idempotency_key).hex()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key_signature(nonce: str) -> str:
    return base64.urlsafe_b64encode(_keyed(b"form-key:", nonce)[:12]).decode()


def new_idempotency_key() -> str:
    """A one-time key for one booking form, signed: only keys this service issued are taken, so
    no client can choose a key (a constant one would let the next sender with the same key and
    IIN be handed the first booking's link)."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_key_signature(nonce)}"


def is_issued_key(key: str) -> bool:
    nonce, dot, signature = key.rpartition(".")
    return bool(dot and nonce) and hmac.compare_digest(signature, _key_signature(nonce))


class ForeignFormKey(DomainError):
    message = _l("The form has expired or was sent from another page. Please reload and try again.")


def _new_reference(prefix: str) -> str:
    """A random reference; `_under_fresh_reference` draws again when the database has it."""
    return prefix + "-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


# The region's short name (region.short), a dash, six characters of the alphabet.
_REFERENCE = re.compile(f"([A-Z0-9]{{1,3}})-?([{REFERENCE_ALPHABET}]{{6}})")
# Cyrillic capitals drawn as Latin ones: typed with a Russian or Kazakh keyboard layout.
_LATIN_LOOKALIKES = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")
_LONGEST_TYPED_REFERENCE = 40


def canonical_reference(typed: str) -> str | None:
    """A reference as people type it (any case, with spaces, any dash or none, Cyrillic
    look-alike letters, full-width characters) as it is stored, e.g. ATY-7K3M9Q; None for text
    that cannot be one."""
    if len(typed) > _LONGEST_TYPED_REFERENCE:
        return None
    text = unicodedata.normalize("NFKC", typed).upper().translate(_LATIN_LOOKALIKES)
    text = "".join("-" if unicodedata.category(c) == "Pd" else c for c in text if not c.isspace())
    match = _REFERENCE.fullmatch(text)
    return f"{match[1]}-{match[2]}" if match else None


def _citizen_lock_key(iin_hash: str) -> int:
    """The advisory lock that serialises one citizen's bookings (keyed by the IIN's hash only: the
    institution is not known before the slot is read, and one citizen books one time at a time)."""
    digest = hashlib.sha256(b"citizen:" + iin_hash.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _citizen_lock(iin_hash: str) -> None:
    """Serialise one citizen's bookings (SQLite's write lock already does)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.connection().execute(_LOCK_CITIZEN, {"lock_key": _citizen_lock_key(iin_hash)})


_LOCK_CITIZEN = select(func.pg_advisory_xact_lock(bindparam("lock_key")))


# --- reading -------------------------------------------------------------------------------------


def slot_for_booking(
    slot_id: int, at: datetime | None = None
) -> tuple[BookableSlot, list[tuple[int, str]]]:
    """The slot if a citizen may book it now (else SlotUnavailable with a reason), and the active
    topics as the form's choices, read with it in one statement."""
    at = at or clock_now()
    dialect = db.session.get_bind().dialect.name
    row = _bookable_row(_BOOKABLE_WITH_TOPICS[dialect], {"slot_id": slot_id, "at": at})
    slot = _bookable_slot_of(row, at)
    return slot, list(_listed_choices(row.active_topics, current_language()))


@functools.lru_cache(maxsize=64)
def _listed_choices(listed: str | None, language: str) -> tuple[tuple[int, str], ...]:
    """The form's choices from the slot read's JSON text of the active topics (an edited list
    is other text: a new key)."""
    entries = sorted(json.loads(listed or "[]"), key=lambda entry: (entry[0], entry[1]))
    return tuple(_choices((TopicNames(*entry[2:]) for entry in entries), language))


# What the form, the checks and the messages read from a slot, in one query (lazy loading took
# five more: session, institution, schedule, district, region). Built once: options are immutable.
_SLOT_CONTEXT = (
    joinedload(Slot.session).joinedload(ScheduledSession.schedule),
    joinedload(Slot.session)
    .joinedload(ScheduledSession.institution)
    .joinedload(Institution.district)
    .joinedload(District.region),
)


# The booking pages' read model: what the form, the checks and the messages read of a slot, as
# plain frozen objects from one Core row. Every request of a booking reads one; the same graph
# of six ORM objects (slot, session, schedule, institution, district, region) cost more than the
# rest of opening the form. It is read-only: writes go through statements or the ORM models.
# Each class's fields that are not nested objects are columns of the same name of its model
# (`_READ_FROM`): the query and the objects are both made from that one list.
@dataclass(frozen=True, slots=True)
class BookableRegion:
    short: str
    timezone: str


@dataclass(frozen=True, slots=True)
class BookableDistrict:
    region: BookableRegion


@dataclass(frozen=True, slots=True)
class BookableInstitution(InstitutionNames):
    id: int
    active: bool
    name_kk: str
    name_ru: str
    name_en: str
    address_kk: str
    address_ru: str
    head_name: str
    head_position_kk: str
    head_position_ru: str
    head_position_en: str
    district: BookableDistrict


@dataclass(frozen=True, slots=True)
class BookableSchedule:
    id: int
    host_name: str
    host_position: str
    location: str
    booking_opens_days: int
    booking_closes_hours: int


@dataclass(frozen=True, slots=True)
class BookableSession:
    id: int
    status: str
    awaiting_decision: bool
    kind: str
    schedule_id: int
    institution_id: int
    schedule: BookableSchedule
    institution: BookableInstitution


@dataclass(frozen=True, slots=True)
class BookableSlot:
    id: int
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int
    session: BookableSession


_READ_FROM: dict[type, Any] = {
    BookableRegion: Region,
    BookableDistrict: District,
    BookableInstitution: Institution,
    BookableSchedule: Schedule,
    BookableSession: ScheduledSession,
    BookableSlot: Slot,
}


_NESTED = {view.__name__ for view in _READ_FROM}


def _columns_of(view: type) -> list[str]:
    """The view's fields that are columns (the others hold another view)."""
    return [f.name for f in fields(view) if getattr(f.type, "__name__", f.type) not in _NESTED]


# Each view's columns and where they sit in the query's row, in `_READ_FROM`'s order.
_SPANS: dict[type, tuple[list[str], int, int]] = {}
for _view_type in _READ_FROM:
    _names = _columns_of(_view_type)
    _start = sum(len(names) for names, _, _ in _SPANS.values())
    _SPANS[_view_type] = (_names, _start, _start + len(_names))

_BOOKABLE = (
    select(
        *(
            getattr(model, name).label(f"{view.__name__}_{name}")
            for view, model in _READ_FROM.items()
            for name in _SPANS[view][0]
        )
    )
    .join(ScheduledSession, ScheduledSession.id == Slot.session_id)
    .join(Schedule, Schedule.id == ScheduledSession.schedule_id)
    .join(Institution, Institution.id == ScheduledSession.institution_id)
    .join(District, District.id == Institution.district_id)
    .join(Region, Region.id == District.region_id)
    .where(Slot.id == bindparam("slot_id"))
)


# A submission's slot, and whether its topic is active (null: no such topic), in one round trip.
_BOOKABLE_FOR_TOPIC = _BOOKABLE.add_columns(
    select(Topic.active)
    .where(Topic.id == bindparam("topic_id"))
    .scalar_subquery()
    .label("topic_active")
)
# On PostgreSQL the same read also takes the citizen's lock (_citizen_lock), one round trip less.
# The checks after it are later statements, which in READ COMMITTED see what the citizen's other
# submissions committed before the lock was granted (this statement's own snapshot is older).
_BOOKABLE_FOR_TOPIC_LOCKING = _BOOKABLE_FOR_TOPIC.add_columns(
    func.pg_advisory_xact_lock(bindparam("lock_key")).label("citizen_locked")
)


def _json_rows(dialect: str, *columns: Any) -> Any:
    """An aggregate of `columns`, one JSON array per row, as the JSON text of an array: SQLite's
    gives text, PostgreSQL's is cast to it (an empty one included), so readers parse it and may
    keep what they made of it by that text."""
    if dialect == "postgresql":
        return func.coalesce(cast(func.json_agg(func.json_build_array(*columns)), Text), "[]")
    return func.json_group_array(func.json_array(*columns))


def _active_topics(dialect: str) -> Any:
    """The active topics as one JSON array of [position, slug, id, name_kk, name_ru, name_en]
    (sorted by the reader: neither backend's aggregate promises an order here)."""
    columns = (Topic.position, Topic.slug, Topic.id, Topic.name_kk, Topic.name_ru, Topic.name_en)
    aggregate = _json_rows(dialect, *columns)
    listed = select(aggregate).where(Topic.active.is_(True)).scalar_subquery()
    # A full slot's page lists free times, not topics: the aggregate is not run for it.
    return case((_open_seats(), listed), else_=None).label("active_topics")


def _open_seats() -> Any:
    """The slot has seats left, in a session that takes bookings (one kept for its bookings
    after its schedule changed takes none until staff decide): else its page lists free times."""
    return and_(Slot.booked < Slot.capacity, ScheduledSession.awaiting_decision.is_(False))


# Candidates for a full slot's page: four times the six it lists, from the earliest on; the
# booking window's bounds are kept in Python (booking_status), as nearest_free_slots does.
_FREE_CANDIDATES = 24
FREE_TIMES_LISTED = 6


def _free_times(dialect: str) -> Any:
    """A full slot's free times in the same schedule as one JSON array of [id, starts_at] (none
    read for a slot with seats left: its form lists topics), and a slot's whose session takes no
    new bookings."""
    other, its_session = aliased(Slot), aliased(ScheduledSession)
    candidates = (
        select(other.id, other.starts_at)
        .join(its_session, its_session.id == other.session_id)
        .where(
            its_session.schedule_id == ScheduledSession.schedule_id,
            its_session.status == SessionStatus.planned.value,
            its_session.awaiting_decision.is_(False),
            other.booked < other.capacity,
            other.starts_at > bindparam("at"),
            other.id != Slot.id,
        )
        .order_by(other.starts_at)
        .limit(_FREE_CANDIDATES)
        .correlate(ScheduledSession, Slot)
        .subquery("free")
    )
    aggregate = _json_rows(dialect, candidates.c.id, candidates.c.starts_at)
    listed = select(aggregate).select_from(candidates).scalar_subquery()
    return case((not_(_open_seats()), listed), else_=None).label("free_times")


def _free_times_of(listed: str, at: datetime, window: BookingWindow) -> list[FreeSlot] | None:
    """The page's free times from `_free_times`' JSON text; None when the candidates ran out
    before the page's six were found (nearest_free_slots then reads them)."""
    entries = json.loads(listed)
    moments = sorted((_utc(starts_at), slot_id) for slot_id, starts_at in entries)
    found = [
        FreeSlot(slot_id, starts_at)
        for starts_at, slot_id in moments
        if booking_status(starts_at, at, window) is WindowStatus.open
    ][:FREE_TIMES_LISTED]
    if len(found) < FREE_TIMES_LISTED and len(entries) == _FREE_CANDIDATES:
        return None
    return found


def _utc(text: str) -> datetime:
    """A moment as JSON gives it: PostgreSQL's with its offset, SQLite's stored naive UTC."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# The form's slot and the topics it offers in one round trip; for a full slot, its free times.
_BOOKABLE_WITH_TOPICS = {
    dialect: _BOOKABLE.add_columns(_active_topics(dialect), _free_times(dialect))
    for dialect in ("postgresql", "sqlite")
}
# A submission's read: with the citizen's lock on PostgreSQL (SQLite's write lock serialises
# citizens), and a full slot's free times for the refusal's page.
_SUBMISSION_READS = {
    "postgresql": _BOOKABLE_FOR_TOPIC_LOCKING.add_columns(_free_times("postgresql")),
    "sqlite": _BOOKABLE_FOR_TOPIC.add_columns(_free_times("sqlite")),
}


def _submission_read(dialect: str) -> Any:
    """The statement a submission reads its slot with."""
    return _SUBMISSION_READS[dialect]


def _view(view: type, row: Any, **nested: Any) -> Any:
    names, start, stop = _SPANS[view]
    return view(**dict(zip(names, row[start:stop], strict=True)), **nested)


def _bookable_row(query: Any, params: dict[str, Any]) -> Any:
    row = db.session.connection().execute(query, params).first()
    if row is None:
        raise SlotNotFound()
    return row


def get_slot(slot_id: int) -> BookableSlot:
    return _slot_of(_bookable_row(_BOOKABLE, {"slot_id": slot_id}))


def _bookable_slot_of(row: Any, at: datetime) -> BookableSlot:
    slot = _slot_of(row)
    try:
        _check_bookable(slot, at)
    except SlotUnavailable as refusal:
        refusal.opens_at = _opens_later(slot, at, refusal)
        if refusal.opens_at is not None:
            refusal.timezone = slot.session.institution.district.region.timezone
        listed = row._mapping.get("free_times")
        if listed is not None and refusal.window is not None:
            refusal.free_times = _free_times_of(listed, at, refusal.window)
        raise
    return slot


def _opens_later(slot: BookableSlot, at: datetime, refusal: SlotUnavailable) -> datetime | None:
    """When booking opens for a slot refused because it has not opened yet (a planned session
    with seats left), else None."""
    session, window = slot.session, refusal.window
    if refusal.taken or window is None or session.status != SessionStatus.planned:
        return None
    if session.awaiting_decision:
        return None
    if booking_status(slot.starts_at, at, window) is not WindowStatus.not_yet_open:
        return None
    return window.opens_at(slot.starts_at) if session.institution.active else None


def _slot_of(row: Any) -> BookableSlot:
    district = _view(BookableDistrict, row, region=_view(BookableRegion, row))
    session = _view(
        BookableSession,
        row,
        schedule=_view(BookableSchedule, row),
        institution=_view(BookableInstitution, row, district=district),
    )
    slot: BookableSlot = _view(BookableSlot, row, session=session)
    return slot


def _why_not_bookable(slot: Slot | BookableSlot, at: datetime) -> str | None:
    """Why the slot's time cannot be booked (or moved to) now, its seats aside; None if it can."""
    session = slot.session
    if session.status != SessionStatus.planned or not session.institution.active:
        return str(_l("This session has been cancelled."))
    if session.awaiting_decision:
        return str(
            _l(
                "This session takes no new bookings: the institution has changed its schedule. "
                "Please choose another time."
            )
        )
    status = booking_status(slot.starts_at, at, window_of(session.schedule))
    if status is WindowStatus.past or status is WindowStatus.closed:
        return str(_l("Booking for this time has closed."))
    if status is WindowStatus.not_yet_open:
        return str(_l("Booking for this time has not opened yet."))
    return None


def _check_bookable(slot: Slot | BookableSlot, at: datetime) -> None:
    reason = _why_not_bookable(slot, at)
    if reason is None and slot.booked < slot.capacity:
        return
    session = slot.session
    raise SlotUnavailable(  # without a reason: the time was just taken
        reason,
        slot_id=slot.id,
        schedule_id=session.schedule_id,
        institution_id=session.institution_id,
        window=window_of(session.schedule),
    )


@dataclass(frozen=True, slots=True)
class FreeSlot:
    """A free time as the 409 page and the reschedule form list it."""

    id: int
    starts_at: datetime


# Free slots of an institution from the earliest on, with their schedule's booking window, as
# plain rows; the exclusion and the bounds are bind parameters (slot ids start at 1: excluding 0
# leaves none out), so it is built once.
_FREE_SLOTS_ANY_SCHEDULE = (
    select(
        Slot.id,
        Slot.starts_at,
        Schedule.booking_opens_days,
        Schedule.booking_closes_hours,
    )
    .join(ScheduledSession, ScheduledSession.id == Slot.session_id)
    .join(Schedule, Schedule.id == ScheduledSession.schedule_id)
    .where(
        ScheduledSession.institution_id == bindparam("institution_id"),
        ScheduledSession.status == SessionStatus.planned.value,
        ScheduledSession.awaiting_decision.is_(False),
        Slot.booked < Slot.capacity,
        Slot.starts_at > bindparam("after"),
        Slot.id != bindparam("exclude_id"),
    )
    .order_by(Slot.starts_at)
    .limit(bindparam("rows"))
)
_FREE_SLOTS_IN_SCHEDULE = _FREE_SLOTS_ANY_SCHEDULE.where(
    ScheduledSession.schedule_id == bindparam("schedule_id"),
    Slot.starts_at <= bindparam("until"),
)
# Every one within the booking window (which bounds them), for a booking to move to.
_ALL_FREE_SLOTS_IN_SCHEDULE = _FREE_SLOTS_IN_SCHEDULE.limit(None)


_WINDOW = select(Schedule.booking_opens_days, Schedule.booking_closes_hours).where(
    Schedule.id == bindparam("schedule_id")
)


def nearest_free_slots(
    *,
    institution_id: int,
    schedule_id: int | None = None,
    at: datetime | None = None,
    limit: int | None = FREE_TIMES_LISTED,
    exclude_slot_id: int | None = None,
    window: BookingWindow | None = None,
) -> list[FreeSlot]:
    """Free slots from the earliest on; with a schedule, within its booking window (`window`,
    when the caller has read it already), and then `limit` None lists every one."""
    at = at or clock_now()
    params: dict[str, Any] = {
        "institution_id": institution_id,
        "after": at,
        "exclude_id": exclude_slot_id or 0,
    }
    query = _FREE_SLOTS_ANY_SCHEDULE
    if schedule_id is None:
        if limit is None:
            raise ValueError("only one schedule's free times can all be listed")
        window = None
        params["rows"] = limit * 4
    else:
        if window is None:
            bounds = db.session.connection().execute(_WINDOW, {"schedule_id": schedule_id})
            row = bounds.first()
            if row is None:
                return []
            window = window_of(row)
        # One schedule has one booking window: the database keeps to it, so that exactly
        # `limit` rows are read (the 409 page of a rush read four times as many, with their
        # sessions and schedules). booking_status below stays the rule.
        query = _FREE_SLOTS_IN_SCHEDULE if limit is not None else _ALL_FREE_SLOTS_IN_SCHEDULE
        params |= {
            "schedule_id": schedule_id,
            "after": max(at, at + timedelta(hours=window.closes_hours_before)),
            "until": at + timedelta(days=window.opens_days_ahead),
            **({} if limit is None else {"rows": limit}),
        }
    found = []
    for row in db.session.connection().execute(query, params):
        if booking_status(row.starts_at, at, window or window_of(row)) is WindowStatus.open:
            found.append(FreeSlot(row.id, row.starts_at))
        if len(found) == limit:
            break
    return found


def booking_by_token(token: str) -> Booking:
    if not token or len(token) > 100:
        raise InvalidManageLink()
    booking = db.session.scalars(
        select(Booking).where(Booking.manage_token_hash == token_hash(token))
    ).first()
    if booking is None:
        raise InvalidManageLink()
    return booking


def booking_by_reference(typed: str) -> Booking | None:
    reference = canonical_reference(typed)
    if reference is None:
        return None
    return db.session.scalars(select(Booking).where(Booking.reference == reference)).first()


_ACTIVE_TOPICS = select(
    Topic.id, Topic.name_kk, Topic.name_ru, Topic.name_en, Topic.position, Topic.slug
).where(Topic.active.is_(True))


@dataclass(frozen=True, slots=True)
class TopicNames:
    """A topic as a form lists it (`localized` reads the names)."""

    id: int
    name_kk: str
    name_ru: str
    name_en: str


def _choices(topics: Iterable[Any], language: str | None = None) -> list[tuple[int, str]]:
    language = language or current_language()
    return [(topic.id, localized(topic, "name", language)) for topic in topics]


def topic_choices() -> list[tuple[int, str]]:
    """The active topics as a form's choices, in the reader's language (plain rows, no objects;
    the booking form reads them with its slot, slot_for_booking)."""
    rows = db.session.connection().execute(_ACTIVE_TOPICS)
    # Sorted here as slot_for_booking sorts them, whatever the database's collation.
    return _choices(sorted(rows, key=lambda row: (row.position, row.slug)))


def local_month(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m")


def can_change(booking: Booking, at: datetime | None = None) -> bool:
    policy = CancellationPolicy(hours_before=booking.schedule.cancel_hours_before)
    return booking.is_active and policy.can_cancel(booking.slot.starts_at, at or clock_now())


def require_changeable(booking: Booking, at: datetime | None = None) -> None:
    """Refuse a change to a booking that is no longer active, or whose deadline has passed:
    each with its own reason, the closed booking's first (its deadline no longer matters)."""
    if not booking.is_active:
        raise BookingClosed()
    if not can_change(booking, at):
        raise ManageClosed()


def cancellation_deadline(booking: Booking) -> datetime:
    return CancellationPolicy(hours_before=booking.schedule.cancel_hours_before).deadline(
        booking.slot.starts_at
    )


# --- writing -------------------------------------------------------------------------------------


# The statements of every booking, built once with bind parameters (building them took longer
# than running them): a statement is immutable and SQLAlchemy caches its compiled form.
# The session is read FOR KEY SHARE (the lock the booking's foreign key takes anyway, shared by
# every booking of the session): a schedule change locks the sessions it may withdraw FOR UPDATE
# before it reads their seats (`schedules.services._diff`), so a seat is taken either before
# that read, which then sees it, or after the change is committed, when a withdrawn session is
# no longer planned. Without the lock, PostgreSQL checks the status as the statement found it,
# before a change committed meanwhile, and a seat could be taken in a withdrawn session.
_TAKE_SEAT = (
    update(Slot)
    .where(
        Slot.id == bindparam("slot_id"),
        Slot.booked < Slot.capacity,
        select(ScheduledSession.id)
        .where(
            ScheduledSession.id == Slot.session_id,
            ScheduledSession.status == SessionStatus.planned.value,
            ScheduledSession.awaiting_decision.is_(False),
        )
        .with_for_update(read=True, key_share=True)
        .exists(),
    )
    .values(booked=Slot.booked + 1)
    .execution_options(synchronize_session=False)
)
_HELD_WHERE = (
    Booking.institution_id == bindparam("institution_id"),
    Booking.iin_hash == bindparam("iin_hash"),
    Booking.month == bindparam("month"),
    Booking.status.in_(ACTIVE_STATUSES),
    Booking.id != bindparam("except_id"),
)
_HELD = select(func.count()).select_from(Booking).where(*_HELD_WHERE)
# The same bookings, for the refusal of a citizen over the month's limit.
_HELD_BOOKINGS = select(Booking.reference, Booking.phone).where(*_HELD_WHERE).order_by(Booking.id)


# A submission's seat, taken only while the citizen holds fewer than `limit` bookings at the
# institution that month: the count and the seat in one statement.
_TAKE_SEAT_WITHIN_LIMIT = _TAKE_SEAT.where(_HELD.scalar_subquery() < bindparam("limit"))


def _take_seat(slot_id: int) -> bool:
    """The only way a seat is taken: one conditional UPDATE, atomic on SQLite and PostgreSQL."""
    # On the session's connection, past the ORM: a seat is never a pending change of the session.
    return db.session.connection().execute(_TAKE_SEAT, {"slot_id": slot_id}).rowcount == 1


def _held_params(
    institution_id: int, iin_hash: str, month: str, except_id: int = 0
) -> dict[str, Any]:
    """`_HELD`'s parameters (ids start at 1: the default leaves no booking out)."""
    return {
        "institution_id": institution_id,
        "iin_hash": iin_hash,
        "month": month,
        "except_id": except_id,
    }


def _held(institution_id: int, iin_hash: str, month: str, *, except_id: int = 0) -> int:
    """The citizen's active bookings at one institution in one month."""
    params = _held_params(institution_id, iin_hash, month, except_id)
    return db.session.connection().execute(_HELD, params).scalar() or 0


def _limit_reached(held: list[Any], phone: str) -> BookingLimitReached:
    """The refusal of a citizen holding `held` bookings (reference, phone) there that month.

    It names the booking only to a sender who typed its phone number as well as the IIN: an IIN
    is printed on many documents, and a stranger who knows it must not learn someone's booking
    (its status page says where and on which day). The manage link is never given: it is not
    stored, and lives only in the citizen's messages and confirmation page.
    """
    reference = next((row.reference for row in held if row.phone == phone), None)
    return BookingLimitReached(reference=reference)


def _release_seat(slot_id: int) -> None:
    db.session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.booked > 0)
        .values(booked=Slot.booked - 1)
        .execution_options(synchronize_session=False)
    )


def manage_url(token: str) -> str:
    return public_url("booking.manage", token=token)


def _slot_payload(slot: Slot | BookableSlot) -> dict[str, Any]:
    """What every message about a time says: where, when, which institution."""
    session = slot.session
    institution = session.institution
    return {
        "institution": institution.name_in_each_language,
        "starts_at": slot.starts_at.isoformat(),
        "tz": institution.district.region.timezone,
        # The room staff typed (one language), else the address in each reader's language.
        "location": session.schedule.location or institution.address_in_each_language,
    }


def _reference_payload(reference: str, token: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "reference": reference,
        "status_url": public_url("booking.status", reference=reference),
    }
    if token:
        payload["manage_url"] = manage_url(token)
    return payload


# The messages that ask for one answer, and the answer their signed link is for.
_ANSWER_ASKED_BY = {"feedback_request": Purpose.feedback, "resolution_check": Purpose.resolved}


def _message_payload(booking: Booking, template: str, token: str | None = None) -> dict[str, Any]:
    """What a message about a booking says and links to: its time and place, its status page,
    the institution's page (where to choose another time), and for a message that asks for an
    answer, the link to give it."""
    payload = {
        **_slot_payload(booking.slot),
        **_reference_payload(booking.reference, token),
        "institution_url": public_url("institutions.detail", institution_id=booking.institution_id),
    }
    purpose = _ANSWER_ASKED_BY.get(template)
    if purpose is not None:
        payload["answer_url"] = answer_url(booking.id, purpose)
    return payload


def _outbox_rows(
    booking_id: int,
    recipients: dict[Channel, str],
    locale: str,
    template: str,
    payload: dict[str, Any],
) -> list[dict[str, Any] | None]:
    """A booking's SMS and e-mail (None where the citizen gave no address)."""
    return [
        outbox_row(channel, recipient, template, locale, payload, booking_id)
        for channel, recipient in recipients.items()
    ]


def _enqueue_both(
    booking: Booking, template: str, payload: dict[str, Any]
) -> list[Notification | None]:
    recipients = {Channel.sms: booking.phone, Channel.email: booking.email}
    rows = _outbox_rows(booking.id, recipients, booking.locale, template, payload)
    return [add_to_outbox(row) for row in rows]


def _notify(
    booking: Booking, template: str, token: str | None = None, **extra: Any
) -> list[Notification | None]:
    return _enqueue_both(booking, template, {**_message_payload(booking, template, token), **extra})


def _link_messages(booking_ids: Iterable[int]) -> list[Notification]:
    """The messages of these bookings that show the manage link (their confirmations)."""
    ids = set(booking_ids)
    if not ids:
        return []
    query = select(Notification).where(
        Notification.booking_id.in_(ids), Notification.template.in_(templates_with("manage_url"))
    )
    return list(db.session.scalars(query.order_by(Notification.id)))


def _delivered_elsewhere(message: Notification, others: Iterable[Notification]) -> list[str]:
    """The other channels by which the booking's link reached the citizen and by which nothing
    showing it is waiting: a new link makes that one stop working, so it goes there too."""
    others = [o for o in others if o.booking_id == message.booking_id and o.id != message.id]
    waiting = {o.channel for o in others if o.status == DeliveryStatus.pending}
    delivered = {o.channel for o in others if o.status == DeliveryStatus.sent}
    return sorted(delivered - waiting - {message.channel})


def link_delivered_elsewhere(messages: list[Notification]) -> dict[int, list[str]]:
    """For each message that has lost the manage link its template shows: the channels that
    also get the new link when it is sent again (see `reissue_manage_link`)."""
    others = _link_messages(m.booking_id for m in messages if m.booking_id is not None)
    return {m.id: _delivered_elsewhere(m, others) for m in messages}


def restore_answer_link(message: Notification) -> None:
    """Put back the answer link of a message that asks for an answer (removed when it was sent
    or failed): it is signed, not stored, so the same link is made again."""
    purpose = _ANSWER_ASKED_BY.get(message.template)
    if purpose is not None and message.booking_id is not None:
        message.payload = {**message.payload, "answer_url": answer_url(message.booking_id, purpose)}


def reissue_manage_link(message: Notification, at: datetime | None = None) -> list[Notification]:
    """Give the booking of a message that lost its manage link a new one, and put it in it.

    Only a link's hash is kept, and a message's copy is removed once it is sent or has failed, so
    a failed confirmation cannot be sent again with the link it had: the booking gets a new
    random one (256 bits), and the old one stops working. It is put in the message, with the
    booking's time and place as they are now (the meeting may have moved since), and in every
    other message of the booking still waiting to go. Where the old link was delivered (the
    confirmation by SMS when the e-mail failed), the message is sent again with the new one, so
    that no link the citizen holds stops working unannounced; those copies are returned, to be
    delivered after the commit. Refused for a cancelled booking or a meeting that has begun.
    """
    at = at or clock_now()
    booking = (
        db.session.get(Booking, message.booking_id, with_for_update=True)
        if message.booking_id is not None
        else None
    )
    if booking is None:
        raise Conflict(str(_l("The booking this message was about no longer exists.")))
    if not booking.is_active or booking.slot.starts_at <= at:
        raise Conflict(
            str(
                _l(
                    "The booking has been cancelled or its meeting has begun, so this message "
                    "is not sent again."
                )
            )
        )
    others = _link_messages([booking.id])
    resend = _delivered_elsewhere(message, others)
    token = secrets.token_urlsafe(32)
    booking.manage_token_hash = token_hash(token)
    payload = _message_payload(booking, message.template, token)
    message.payload = {**message.payload, **payload}
    for other in others:
        if other.status == DeliveryStatus.pending and other.id != message.id:
            other.payload = {**other.payload, "manage_url": payload["manage_url"]}
    recipients = {Channel.sms.value: booking.phone, Channel.email.value: booking.email}
    copies = [
        add_to_outbox(
            outbox_row(
                Channel(channel),
                recipients[channel],
                message.template,
                booking.locale,
                payload,
                booking.id,
            )
        )
        for channel in resend
    ]
    return [copy for copy in copies if copy is not None]


def _event(booking: Booking, kind: str, **details: Any) -> None:
    db.session.add(StatusEvent(booking=booking, kind=kind, at=clock_now(), details=details))


_BY_FORM_KEY = select(Booking.reference, Booking.iin_hash).where(
    Booking.idempotency_hash == bindparam("key_hash")
)


def _find_repeat(key_hash: str, iin_hash: str) -> Any:
    """The booking this form already made (its reference), or None; the same form key from
    another citizen is a conflict."""
    repeated = db.session.connection().execute(_BY_FORM_KEY, {"key_hash": key_hash}).first()
    if repeated is not None and repeated.iin_hash != iin_hash:
        raise Conflict()
    return repeated


_REFERENCE_DRAWS = 20
# SQLite's booking insert (PostgreSQL's is _booking_at_once, with the event and the messages).
_SQLITE_BOOKING_INSERT = (
    sqlite_insert(Booking.__table__)
    .on_conflict_do_nothing(index_elements=["reference"])
    .returning(Booking.__table__.c.id)
)


def _under_fresh_reference(prefix: str, insert: Callable[[str], Any]) -> tuple[Any, str]:
    """What `insert(reference)` returns for the first reference drawn that is not in use, and
    that reference.

    A reference already in use (31^6 codes per region) is drawn again. The inserts skip that
    conflict themselves (ON CONFLICT (reference) DO NOTHING: `insert` returns None), so no query
    looks first and the transaction is never broken by it; any other unique conflict (the same
    form sent twice) still raises.
    """
    for _ in range(_REFERENCE_DRAWS):
        reference = _new_reference(prefix)
        inserted = insert(reference)
        if inserted is not None:
            return inserted, reference
    raise RuntimeError(f"no free booking reference after {_REFERENCE_DRAWS} draws")


def _insert_booking(prefix: str, values: dict[str, Any]) -> tuple[int, str]:
    """Insert a booking under a fresh reference on SQLite (Core, on the session's connection):
    its id and the reference."""
    connection = db.session.connection()
    return _under_fresh_reference(
        prefix,
        lambda reference: connection.execute(
            _SQLITE_BOOKING_INSERT, {**values, "reference": reference}
        ).scalar(),
    )


def _refused(error: DomainError, key_hash: str, iin_hash: str, token: str) -> BookingResult:
    """A refused form gets its own booking if it is a repeat (that booking may be what took the
    last seat or the month's booking, or the window or the topic may have closed since);
    otherwise the refusal stands. What it reads (and the 409 page's free times) is read
    outside a transaction on PostgreSQL."""
    read_only_request()
    repeated = _find_repeat(key_hash, iin_hash)
    if repeated is None:
        raise error
    return BookingResult(repeated.reference, token, repeated=True)


def _seat_for(
    request: BookingRequest, iin_hash: str, at: datetime
) -> tuple[BookableSlot, dict[str, Any]]:
    """A seat of the request's slot, taken in the current write transaction, and the facts a
    booking of it records; or the refusal (a DomainError), raised before anything is written."""
    row = _bookable_row(
        _submission_read(db.session.get_bind().dialect.name),
        {
            "slot_id": request.slot_id,
            "topic_id": request.topic_id,
            "lock_key": _citizen_lock_key(iin_hash),
            "at": at,
        },
    )
    slot = _bookable_slot_of(row, at)
    if not row.topic_active:
        raise TopicUnavailable()
    session = slot.session
    facts = {
        "slot_id": slot.id,
        "session_id": session.id,
        "schedule_id": session.schedule_id,
        "institution_id": session.institution_id,
        "topic_id": request.topic_id,
        "month": local_month(slot.starts_at, session.institution.district.region.timezone),
    }
    limit = int(current_app.config.get("BOOKINGS_PER_INSTITUTION_MONTH", 1))
    # Only the statement's parameters: a column's name among them would be SET as well.
    within_limit = {
        **_held_params(facts["institution_id"], iin_hash, facts["month"]),
        "slot_id": facts["slot_id"],
        "limit": limit,
    }
    if db.session.connection().execute(_TAKE_SEAT_WITHIN_LIMIT, within_limit).rowcount != 1:
        # Which of the two it was (the citizen's count cannot change under the citizen's lock).
        params = _held_params(facts["institution_id"], iin_hash, facts["month"])
        held = db.session.connection().execute(_HELD_BOOKINGS, params).all()
        if len(held) >= limit:
            raise _limit_reached(held, request.phone)
        raise SlotUnavailable(
            slot_id=facts["slot_id"],
            schedule_id=facts["schedule_id"],
            institution_id=facts["institution_id"],
            window=window_of(session.schedule),
        )
    return slot, facts


def book_slot(request: BookingRequest, at: datetime | None = None) -> BookingResult:
    """Book one seat. Raises SlotUnavailable (409), BookingLimitReached (409) or DomainError.

    The slot is read in the booking's own transaction. On SQLite that transaction holds the
    write lock from its first statement (BEGIN IMMEDIATE), so the read waits for it, but a
    submission needs one transaction, not a read transaction first with its COMMIT, a second
    pool check-out and a BEGIN. A refusal ends the transaction before its page is built.
    """
    at = at or clock_now()
    if not is_issued_key(request.idempotency_key):
        raise ForeignFormKey()
    iin_hash = identity.iin_hash(request.iin, current_app.config["IIN_HASH_KEY"])
    token = manage_token_for(request.idempotency_key)
    key_hash = idempotency_hash(request.idempotency_key)
    refusal: DomainError | None = None
    # A repeated form is looked for only when the form is refused or its insert meets its own
    # first booking: looking first cost every booking a query.
    try:
        with write_transaction():
            try:
                slot, facts = _seat_for(request, iin_hash, at)
            except DomainError as error:
                # Refused before anything was written, so the transaction ends with a COMMIT
                # that commits nothing: on PostgreSQL a ROLLBACK would also make psycopg forget
                # the connection's prepared statements (and send DEALLOCATE ALL), and a rush's
                # refusals would have every statement planned again.
                refusal = error
            else:
                reference, outbox = _record_booking(
                    request, facts, slot, iin_hash, token, key_hash, at
                )
    except IntegrityError:
        # The same form again (its key is unique): the first submission's booking is the answer.
        db.session.rollback()
        return _refused(Conflict(), key_hash, iin_hash, token)
    if refusal is not None:
        return _refused(refusal, key_hash, iin_hash, token)
    deliver_after_commit(outbox)
    return BookingResult(reference, token)


def _record_booking(
    request: BookingRequest,
    facts: dict[str, Any],
    slot: BookableSlot,
    iin_hash: str,
    token: str,
    key_hash: str,
    at: datetime,
) -> tuple[str, list[int]]:
    """The booking of a seat just taken, its first event and its messages, as plain inserts:
    nothing in this session holds them, and the unit of work cost more than the rest of the
    booking. Its reference, and the messages to deliver once committed."""
    values = {
        **facts,
        "manage_token_hash": token_hash(token),
        "idempotency_hash": key_hash,
        "citizen_name": request.citizen_name.strip(),
        "iin_hash": iin_hash,
        "iin_last4": identity.iin_last4(request.iin),
        "phone": request.phone,
        "email": request.email.strip(),
        "locale": request.locale,
        "question": request.question.strip(),
        "accessibility": sorted(set(request.accessibility)),
        "accessibility_note": request.accessibility_note.strip(),
        "consent_at": at,
        "consent_version": CONSENT_VERSION,
        "status": BookingStatus.booked.value,
        "created_at": at,
        "booked_at": at,
    }
    recipients = {Channel.sms: request.phone, Channel.email: request.email.strip()}
    slot_payload = _slot_payload(slot)

    def messages(booking_id: int | None, reference: str) -> list[dict[str, Any] | None]:
        payload = {**slot_payload, **_reference_payload(reference, token)}
        return _outbox_rows(booking_id, recipients, request.locale, "booking_confirmed", payload)

    prefix = slot.session.institution.district.region.short
    if db.session.get_bind().dialect.name == "postgresql":
        return _insert_booking_at_once(prefix, values, at, messages)
    booking_id, reference = _insert_booking(prefix, values)
    db.session.connection().execute(
        insert(StatusEvent.__table__), {"booking_id": booking_id, "at": at, "kind": "booked"}
    )
    return reference, enqueue_rows(messages(booking_id, reference))


# On PostgreSQL a booking, its first event and its messages are one statement (data-modifying
# CTEs: the event and the messages are inserted from the booking's RETURNING), two round trips
# fewer than three inserts; one statement per number of messages (SMS, and e-mail if given).
_AT_ONCE: dict[tuple[tuple[str, ...], int], Any] = {}
_MESSAGE_COLUMNS = ("channel", "recipient", "template", "locale", "payload", "next_attempt_at")


def _booking_at_once(names: tuple[str, ...], messages: int) -> Any:
    """The statement for a booking of these columns (`names`, the others take their defaults)
    with `messages` messages."""
    statement = _AT_ONCE.get((names, messages))
    if statement is not None:
        return statement
    booking, event, outbox = Booking.__table__, StatusEvent.__table__, Notification.__table__
    new_booking = (
        postgresql_insert(booking)
        .values({name: bindparam(name, type_=booking.c[name].type) for name in names})
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(booking.c.id)
        .cte("new_booking")
    )
    new_event = (
        insert(event)
        .from_select(
            ["booking_id", "at", "kind", "details"],
            select(
                new_booking.c.id,
                bindparam("event_at", type_=event.c.at.type),
                bindparam("event_kind", type_=event.c.kind.type),
                literal({}, event.c.details.type),
            ),
            include_defaults=False,
        )
        .cte("new_event")
    )
    rows = [
        select(
            *(
                bindparam(f"m{number}_{name}", type_=outbox.c[name].type).label(name)
                for name in _MESSAGE_COLUMNS
            ),
            new_booking.c.id.label("booking_id"),
            # What an insert of the row would take from the columns' defaults.
            literal(outbox.c.status.default.arg, outbox.c.status.type).label("status"),
            literal(outbox.c.attempts.default.arg, outbox.c.attempts.type).label("attempts"),
            literal(outbox.c.last_error.default.arg, outbox.c.last_error.type).label("last_error"),
            bindparam("messages_created_at", type_=outbox.c.created_at.type).label("created_at"),
        )
        for number in range(messages)
    ]
    new_messages = (
        insert(outbox)
        .from_select(
            [*_MESSAGE_COLUMNS, "booking_id", "status", "attempts", "last_error", "created_at"],
            union_all(*rows) if messages > 1 else rows[0],
            include_defaults=False,
        )
        .returning(outbox.c.id)
        .cte("new_messages")
    )
    statement = select(
        new_booking.c.id,
        select(func.array_agg(new_messages.c.id)).scalar_subquery().label("message_ids"),
    ).add_cte(new_event)
    _AT_ONCE[(names, messages)] = statement
    return statement


def _with_defaults(table: Any, values: dict[str, Any]) -> dict[str, Any]:
    """`values` and the Python-side defaults of the table's other columns (an INSERT inside a
    CTE is given no defaults: every column it sets is a parameter)."""
    filled = dict(values)
    for column in table.columns:
        default = column.default
        if column.name in filled or column.primary_key or default is None:
            continue
        filled[column.name] = default.arg(None) if default.is_callable else default.arg
    return filled


def _insert_booking_at_once(
    prefix: str,
    values: dict[str, Any],
    at: datetime,
    messages: Callable[[int | None, str], list[dict[str, Any] | None]],
) -> tuple[str, list[int]]:
    """`_insert_booking` on PostgreSQL with the booking's first event and its messages (built
    by `messages` for each reference drawn) in the same statement: its reference and the
    messages' ids."""
    values = _with_defaults(Booking.__table__, {**values, "reference": ""})
    names = tuple(sorted(values))

    def insert(reference: str) -> list[int] | None:
        rows = [row for row in messages(None, reference) if row is not None]
        params = {**values, "reference": reference, "event_at": at, "event_kind": "booked"}
        params["messages_created_at"] = utcnow()  # the column's default, as SQLite's insert gives
        for number, row in enumerate(rows):
            params |= {f"m{number}_{name}": row[name] for name in _MESSAGE_COLUMNS}
        statement = _booking_at_once(names, len(rows))
        inserted = db.session.connection().execute(statement, params).first()
        return None if inserted is None else list(inserted.message_ids or ())

    message_ids, reference = _under_fresh_reference(prefix, insert)
    return reference, message_ids


def _lock_booking(token: str) -> Booking:
    return _locked(Booking.manage_token_hash == token_hash(token))


def _locked(where: Any) -> Booking:
    booking = db.session.scalars(select(Booking).where(where).with_for_update()).first()
    if booking is None:
        raise InvalidManageLink()
    return booking


def cancel_by_citizen(token: str, at: datetime | None = None) -> Booking:
    at = at or clock_now()
    with write_transaction():
        booking = _lock_booking(token)
        require_changeable(booking, at)
        booking.status = BookingStatus.cancelled_by_citizen.value
        booking.cancelled_at = at
        _release_seat(booking.slot_id)
        _event(booking, "cancelled_by_citizen")
        outbox = _notify(booking, "booking_cancelled")
        outbox += _offer_to_waitlist(booking)
        db.session.flush()
        left = _awaiting_session(booking.session_id)
    deliver_after_commit(outbox)
    _settle(left)
    return booking


def _awaiting_session(session_id: int) -> int | None:
    """The session a booking has just left, if it was kept for its bookings (awaiting staff's
    decision): with no booking left it is settled after the commit (`_settle`)."""
    awaiting = db.session.scalar(
        select(ScheduledSession.awaiting_decision).where(ScheduledSession.id == session_id)
    )
    return session_id if awaiting else None


def _settle(session_id: int | None) -> None:
    """Bring a kept session whose bookings all left in line with its schedule now, rather than
    at the next nightly run. The citizen's change is committed already: a failure here is
    logged and left to that run."""
    if session_id is None:
        return
    try:
        settle_if_unheld(session_id)
    except Exception:
        log.exception("could not settle session %s after its last booking left", session_id)


def reschedule(token: str, new_slot_id: int, at: datetime | None = None) -> Booking:
    """Move the booking to another free slot of the same schedule, all or nothing.

    The one judge of a move: it either moves the booking or raises with the reason (NotAnOption
    422, SlotUnavailable or BookingLimitReached 409, BookingClosed, ManageClosed) before anything
    is written.
    """
    at = at or clock_now()
    with write_transaction():
        booking = _lock_booking(token)
        require_changeable(booking, at)
        if new_slot_id == booking.slot_id:
            raise NotAnOption(str(_l("Choose a different time.")))
        slot = db.session.get(Slot, new_slot_id, options=_SLOT_CONTEXT)
        if slot is None or slot.session.schedule_id != booking.schedule_id:
            raise NotAnOption()
        _check_bookable(slot, at)
        month = local_month(slot.starts_at, booking.institution.district.region.timezone)
        if month != booking.month:
            # The same lock as book_slot's: a booking made meanwhile in that month is counted.
            _citizen_lock(booking.iin_hash)
            _check_month_limit(booking, month)
        if not _take_seat(slot.id):
            raise SlotUnavailable(
                slot_id=slot.id,
                schedule_id=booking.schedule_id,
                institution_id=booking.institution_id,
            )
        old_slot_id = booking.slot_id
        _release_seat(old_slot_id)
        left = _awaiting_session(booking.session_id)
        booking.slot_id, booking.session_id = slot.id, slot.session_id
        booking.month = month
        booking.booked_at = at
        booking.reminder_sent_at = None
        db.session.flush()
        db.session.refresh(booking)
        _event(booking, "rescheduled")
        outbox = _notify(booking, "booking_rescheduled")
        outbox += _offer_to_waitlist(booking, freed_slot_id=old_slot_id)
        db.session.flush()
    deliver_after_commit(outbox)
    _settle(left)
    return booking


def _check_month_limit(booking: Booking, month: str) -> None:
    limit = int(current_app.config.get("BOOKINGS_PER_INSTITUTION_MONTH", 1))
    if _held(booking.institution_id, booking.iin_hash, month, except_id=booking.id) >= limit:
        raise BookingLimitReached()


def cancel_for_session(session: ScheduledSession) -> list[Notification | None]:
    """The institution cancelled a session: cancel its bookings, free the seats, tell everyone."""
    outbox: list[Notification | None] = []
    bookings = db.session.scalars(
        select(Booking).where(Booking.session_id == session.id, Booking.status.in_(ACTIVE_STATUSES))
    ).all()
    for booking in bookings:
        booking.status = BookingStatus.cancelled_by_institution.value
        booking.cancelled_at = clock_now()
        _release_seat(booking.slot_id)
        _event(booking, "cancelled_by_institution")
        outbox += _notify(booking, "session_cancelled", reason=session.cancel_reason or "")
    return outbox


def _offer_to_waitlist(
    booking: Booking, freed_slot_id: int | None = None
) -> list[Notification | None]:
    """A seat freed up: tell waiting citizens whose booking is later than the freed time, if
    that time can still be booked (a cancellation may come after the booking window closed: a
    notice then would offer a time no one can take, and use up one of the three)."""
    freed_slot = db.session.get(Slot, freed_slot_id or booking.slot_id)
    if freed_slot is None or _why_not_bookable(freed_slot, clock_now()) is not None:
        return []
    entries = db.session.scalars(
        select(WaitlistEntry)
        .join(WaitlistEntry.booking)
        .join(Booking.slot)
        .where(
            WaitlistEntry.schedule_id == booking.schedule_id,
            WaitlistEntry.active.is_(True),
            Booking.status.in_(ACTIVE_STATUSES),
            Slot.starts_at > freed_slot.starts_at,
            WaitlistEntry.booking_id != booking.id,
        )
    ).all()
    outbox: list[Notification | None] = []
    for entry in entries:
        waiting = entry.booking
        # The notice tells them to move the booking they hold (by its own link, which is not
        # stored): a second booking there that month would be refused by the month's limit.
        outbox += _notify(waiting, "slot_freed", freed_at=freed_slot.starts_at.isoformat())
        entry.notices_sent += 1
        if entry.notices_sent >= WAITLIST_MAX_NOTICES:
            entry.active = False
    return outbox


def join_waitlist(token: str) -> WaitlistEntry:
    """Join (or rejoin) the waitlist of the booking's schedule.

    The count of notices belongs to the citizen and the schedule, not to one booking: rejoining,
    or cancelling and booking again, keeps it, and after three notices joining is refused. A
    booking that can no longer be changed (past the deadline, or the meeting) cannot join, nor
    one with an earlier time free now (EarlierTimeFree: it can move there at once).
    """
    with write_transaction():
        booking = _lock_booking(token)
        require_changeable(booking)
        _citizen_lock(booking.iin_hash)
        entries = db.session.scalars(
            select(WaitlistEntry)
            .join(WaitlistEntry.booking)
            .where(
                WaitlistEntry.schedule_id == booking.schedule_id,
                Booking.iin_hash == booking.iin_hash,
            )
            .order_by(WaitlistEntry.booking_id != booking.id, WaitlistEntry.id)
        ).all()
        sent = sum(entry.notices_sent for entry in entries)
        if sent >= WAITLIST_MAX_NOTICES:
            raise WaitlistUsedUp()
        if earlier_free_time(booking) is not None:
            raise EarlierTimeFree()
        if entries:
            # One entry per citizen and schedule: this booking's own first, else the citizen's
            # earlier one moves to it; any older duplicates are merged into it.
            entry, *merged = entries
            for duplicate in merged:
                db.session.delete(duplicate)
            db.session.flush()
            entry.booking_id, entry.notices_sent = booking.id, sent
        else:
            entry = WaitlistEntry(schedule_id=booking.schedule_id, booking_id=booking.id)
            db.session.add(entry)
        entry.active = True
    return entry


def leave_waitlist(token: str) -> None:
    """Take the booking off the waitlist: once committed, no offer reaches it (the offers read
    only active entries, `_offer_to_waitlist`). The notices already sent still count,
    so rejoining (`join_waitlist`) goes on from them. Leaving what one has not joined, or has
    left already, changes nothing: a second press of the button is not a mistake, and leaving
    is allowed whatever the booking's state, since it only stops messages."""
    with write_transaction():
        booking = _lock_booking(token)
        db.session.execute(
            update(WaitlistEntry)
            .where(WaitlistEntry.booking_id == booking.id, WaitlistEntry.active.is_(True))
            .values(active=False)
            .execution_options(synchronize_session=False)
        )


def booking_by_answer_link(link: str, purpose: Purpose) -> Booking:
    """The booking a signed answer link (`answer_links`) was made for: InvalidAnswerLink or
    AnswerLinkExpired when it is forged, for the other answer or too old, or names no
    booking."""
    booking = db.session.get(Booking, booking_id_of(link, purpose))
    if booking is None:
        raise InvalidAnswerLink()
    return booking


def answer_refusal(booking: Booking, purpose: Purpose) -> str | None:
    """Why the booking's citizen cannot give this answer now (the reason to show), or None.
    The one judge of both answers, by the manage link or by a signed link."""
    return _answer_refusal(booking, purpose, feedback_for(booking))


def _answer_refusal(booking: Booking, purpose: Purpose, feedback: Feedback | None) -> str | None:
    if purpose is Purpose.feedback:
        if booking.status != BookingStatus.attended:
            return str(_l("You can rate the meeting after it has taken place."))
        if feedback is not None and feedback.rating is not None:
            return str(_l("Thank you, you have already rated this meeting."))
        return None
    if not resolution_check_due(booking):
        return str(_l("We will ask this 30 days after your question's outcome."))
    if feedback is not None and feedback.really_resolved is not None:
        return str(_l("Thank you, you have already told us whether your question was resolved."))
    return None


def _answerable(booking: Booking, purpose: Purpose) -> Feedback:
    """The booking's feedback row to record the answer in (a new one if it has none), or
    Conflict with the reason the answer cannot be given (once only, and not too early)."""
    feedback = feedback_for(booking)
    refusal = _answer_refusal(booking, purpose, feedback)
    if refusal is not None:
        raise Conflict(refusal)
    if feedback is None:
        feedback = Feedback(booking_id=booking.id, comment="")
        db.session.add(feedback)
    return feedback


def leave_feedback(booking: Booking, rating: int, comment: str) -> Feedback:
    """Rate the meeting of an attended booking, once (reached by its manage link or by the
    signed link of the feedback request)."""
    booking_id = booking.id
    with write_transaction():
        booking = _locked(Booking.id == booking_id)
        feedback = _answerable(booking, Purpose.feedback)
        feedback.rating, feedback.comment = rating, comment.strip()
        _event(booking, "feedback")
    return feedback


def answer_really_resolved(booking: Booking, resolved: bool) -> Feedback:
    """Say, once and from 30 days after the outcome, whether the question was really resolved."""
    booking_id = booking.id
    with write_transaction():
        booking = _locked(Booking.id == booking_id)
        feedback = _answerable(booking, Purpose.resolved)
        feedback.really_resolved = resolved
        feedback.really_resolved_at = clock_now()
    return feedback


def queue_reminders(at: datetime | None = None) -> int:
    """Reminders 24 h before, only for bookings made earlier than that."""
    at = at or clock_now()
    day = timedelta(hours=24)
    with write_transaction():
        candidates = db.session.scalars(
            select(Booking)
            .join(Booking.slot)
            .where(
                Booking.status.in_(ACTIVE_STATUSES),
                Booking.reminder_sent_at.is_(None),
                Slot.starts_at > at,
                Slot.starts_at <= at + day,
            )
        ).all()
        # Someone who booked or moved the meeting within the last day has the details fresh.
        due = [b for b in candidates if b.booked_at <= b.slot.starts_at - day]
        for booking in due:
            _notify(booking, "reminder")
            booking.reminder_sent_at = at
    return len(due)


def queue_feedback_requests(at: datetime | None = None) -> int:
    """After a visit, ask the citizen to rate it (once), unless they have rated it already on
    the manage page."""
    at = at or clock_now()
    rated = select(Feedback.id).where(
        Feedback.booking_id == Booking.id, Feedback.rating.is_not(None)
    )
    with write_transaction():
        due = db.session.scalars(
            select(Booking)
            .join(Booking.slot)
            .where(
                Booking.status == BookingStatus.attended.value,
                Booking.feedback_requested_at.is_(None),
                Slot.ends_at <= at,
                ~rated.exists(),
            )
        ).all()
        for booking in due:
            _notify(booking, "feedback_request")
            booking.feedback_requested_at = at
    return len(due)


RESOLUTION_CHECK_AFTER = timedelta(days=30)


def _resolution_check_query(at: datetime):  # type: ignore[no-untyped-def]
    """Bookings with a "resolved" or "pending" outcome given at least 30 days before `at`."""
    from ..visits.models import Question, Visit  # visits builds on booking, not the reverse

    return (
        select(Visit.booking_id)
        .join(Question, Question.visit_id == Visit.id)
        .where(
            Visit.booking_id.isnot(None),
            Question.outcome.in_(("resolved", "pending")),
            Question.outcome_at <= at - RESOLUTION_CHECK_AFTER,
        )
    )


def resolution_check_due(booking: Booking, at: datetime | None = None) -> bool:
    """30 days after a "resolved" or "pending" outcome we ask whether it really was resolved."""
    from ..visits.models import Visit

    query = _resolution_check_query(at or clock_now()).where(Visit.booking_id == booking.id)
    return db.session.scalar(query.limit(1)) is not None


def queue_resolution_checks(at: datetime | None = None) -> int:
    at = at or clock_now()
    with write_transaction():
        ids = set(db.session.scalars(_resolution_check_query(at)))
        due = (
            db.session.scalars(
                select(Booking).where(
                    Booking.id.in_(ids), Booking.resolution_check_sent_at.is_(None)
                )
            ).all()
            if ids
            else []
        )
        for booking in due:
            feedback = feedback_for(booking)
            if feedback is not None and feedback.really_resolved is not None:
                continue
            _notify(booking, "resolution_check")
            booking.resolution_check_sent_at = at
    return len(due)


def waitlist_notices_left(booking: Booking) -> int | None:
    """How many more notices the booking's place on the waitlist may bring, or None when it is
    not on the waitlist (never joined, or its notices are used up)."""
    entry = db.session.scalars(
        select(WaitlistEntry).where(
            WaitlistEntry.booking_id == booking.id, WaitlistEntry.active.is_(True)
        )
    ).first()
    return None if entry is None else max(WAITLIST_MAX_NOTICES - entry.notices_sent, 0)


def times_to_move_to(
    booking: Booking, at: datetime | None = None, limit: int | None = None
) -> list[FreeSlot]:
    """The free times of the booking's schedule it can move to now, from the earliest on: every
    one (within the booking window, which bounds them), or the first `limit`."""
    return nearest_free_slots(
        institution_id=booking.institution_id,
        schedule_id=booking.schedule_id,
        at=at,
        limit=limit,
        exclude_slot_id=booking.slot_id,
    )


def earlier_free_time(booking: Booking, at: datetime | None = None) -> FreeSlot | None:
    """The earliest time of the booking's schedule before its own that can be booked now, or
    None: the waitlist is offered and joined only without one."""
    found = times_to_move_to(booking, at, limit=1)
    return found[0] if found and found[0].starts_at < booking.slot.starts_at else None


def feedback_for(booking: Booking) -> Feedback | None:
    return db.session.scalars(select(Feedback).where(Feedback.booking_id == booking.id)).first()


def public_history(booking: Booking) -> list[StatusEvent]:
    return list(booking.events)


def all_topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.position, Topic.slug)))


def topic_by_id(topic_id: int) -> Topic | None:
    return db.session.get(Topic, topic_id)


def add_topic(actor: Any, values: dict[str, str]) -> Topic:
    from ..audit.services import record as audit
    from ..auth.models import Role
    from ..errors import Forbidden

    if actor.role_enum is not Role.admin:
        raise Forbidden()
    try:
        with write_transaction():
            if db.session.scalar(select(Topic.id).where(Topic.slug == values["slug"])) is not None:
                raise TopicCodeTaken()
            position = (db.session.scalar(select(func.max(Topic.position))) or 0) + 1
            topic = Topic(position=position, **values)
            db.session.add(topic)
            db.session.flush()
            audit("topic.added", "topic", topic.id)
    except IntegrityError as error:  # the same code added meanwhile by another administrator
        db.session.rollback()
        raise TopicCodeTaken() from error
    return topic


def set_topic_active(actor: Any, topic_id: int, active: bool) -> Topic:
    from ..audit.services import record as audit
    from ..auth.models import Role
    from ..errors import Forbidden, NotInScope

    if actor.role_enum is not Role.admin:
        raise Forbidden()
    with write_transaction():
        topic = db.session.get(Topic, topic_id)
        if topic is None:
            raise NotInScope()
        topic.active = active
        audit("topic.active" if active else "topic.retired", "topic", topic.id)
    return topic
