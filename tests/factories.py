"""Small factories that build test data directly, never from the demo data."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from receptions.auth.models import Role, User
from receptions.auth.services import hash_password
from receptions.extensions import db
from receptions.geography.models import District, Region
from receptions.institutions.models import Institution

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def _base36(n: int) -> str:
    digits = ""
    while True:
        n, digit = divmod(n, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[digit] + digits
        if n == 0:
            return digits


def _reference(n: int) -> str:
    """A reference of the shape the product draws (TST-, then six characters of its alphabet)."""
    from receptions.booking.services import REFERENCE_ALPHABET

    code = ""
    for _ in range(6):
        n, digit = divmod(n, len(REFERENCE_ALPHABET))
        code = REFERENCE_ALPHABET[digit] + code
    return f"TST-{code}"


def make_region(**values: Any) -> Region:
    n = _n()
    defaults = dict(
        # Region codes have 8 characters: a whole suite makes more than 10,000 objects.
        code=f"KZ-T{_base36(n)}",
        short=f"T{n % 100:02d}"[:3],
        name_kk=f"Сынақ облысы {n}",
        name_ru=f"Тестовая область {n}",
        name_en=f"Test Region {n}",
        timezone="Asia/Almaty",
        kind="region",
    )
    region = Region(**{**defaults, **values})
    db.session.add(region)
    db.session.commit()
    return region


def make_district(region: Region | None = None, **values: Any) -> District:
    n = _n()
    region = region or make_region()
    defaults = dict(
        slug=f"district-{n}",
        name_kk=f"Сынақ ауданы {n}",
        name_ru=f"Тестовый район {n}",
        name_en=f"Test District {n}",
    )
    district = District(region_id=region.id, **{**defaults, **values})
    db.session.add(district)
    db.session.commit()
    return district


def make_institution(district: District | None = None, **values: Any) -> Institution:
    n = _n()
    district = district or make_district()
    defaults = dict(
        type="school",
        name_kk=f"№{n} мектеп",
        name_ru=f"Школа №{n}",
        name_en=f"School No. {n}",
        head_name="Сәуле Тестова",
        head_position_ru="Директор",
        active=True,
    )
    institution = Institution(district_id=district.id, **{**defaults, **values})
    db.session.add(institution)
    db.session.commit()
    return institution


def make_user(
    role: Role = Role.staff,
    *,
    institution: Institution | None = None,
    district: District | None = None,
    region: Region | None = None,
    password: str | None = PASSWORD,
    **values: Any,
) -> User:
    n = _n()
    if role in (Role.staff, Role.head) and institution is None:
        institution = make_institution()
    if role is Role.district_officer and district is None:
        district = make_district()
    if role is Role.region_officer and region is None:
        region = make_region()
    user = User(
        email=values.pop("email", f"user{n}@example.kz"),
        full_name=values.pop("full_name", f"Тест Пайдаланушы {n}"),
        role=role.value,
        password_hash=hash_password(password) if password else None,
        institution_id=institution.id if institution else None,
        district_id=district.id if district else None,
        region_id=region.id if region else None,
        **values,
    )
    db.session.add(user)
    db.session.commit()
    return user


def make_iin(seed: int) -> str:
    """An invented IIN that passes the check digit, different for every seed below 336,000.

    Birth date 1990-MM-DD and a serial from the seed's own block of ten; the first serial in the
    block whose control digit exists is used, so two seeds never share an IIN.
    """
    from receptions.booking.identity import iin_check_digit

    month, day, block = seed % 12 + 1, (seed // 12) % 28 + 1, seed // 336
    for offset in range(10):
        body = f"90{month:02d}{day:02d}3{(block * 10 + offset) % 10000:04d}"
        digit = iin_check_digit(body)
        if digit is not None:
            return body + str(digit)
    raise AssertionError(f"no valid IIN in the block of seed {seed}")


def make_topic(**values: Any):
    from receptions.booking.models import Topic

    n = _n()
    topic = Topic(
        **{
            "slug": f"topic-{n}",
            "name_kk": f"Тақырып {n}",
            "name_ru": f"Тема {n}",
            "name_en": f"Topic {n}",
            **values,
        }
    )
    db.session.add(topic)
    db.session.commit()
    return topic


def started_earlier_today(zone: ZoneInfo, *, at_most_minutes_ago: int = 60) -> datetime:
    """A start time on today's local date that is already past, whatever the hour: up to an hour
    ago, or local midnight just after midnight (so the session is never on yesterday's agenda)."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.astimezone(zone).date(), time(), tzinfo=zone).astimezone(UTC)
    start = max(midnight, now - timedelta(minutes=at_most_minutes_ago))
    return start.replace(minute=start.minute - start.minute % 15, second=0, microsecond=0)


def _new_schedule(institution: Institution, **values: Any):
    from receptions.schedules.models import Schedule

    defaults = dict(
        institution_id=institution.id,
        kind="reception",
        rrule="FREQ=WEEKLY;BYDAY=MO",
        start_time=time(9),
        end_time=time(12),
        slot_minutes=15,
        capacity=1,
        walk_in_places=0,
        breaks=[],
        valid_from=datetime.now(UTC).date(),
        exclusions=[],
        host_name="Айгүл Тестова",
        booking_opens_days=30,
        booking_closes_hours=2,
        cancel_hours_before=2,
    )
    return Schedule(**{**defaults, **values})


def make_schedule(institution: Institution | None = None, **values: Any):
    """A schedule stored directly, without sessions (its rule is not expanded): what a migration
    test stores at an older revision, where the session table has fewer columns."""
    schedule = _new_schedule(institution or make_institution(), **values)
    db.session.add(schedule)
    db.session.commit()
    return schedule


def make_open_session(
    institution: Institution | None = None,
    *,
    slots: int = 3,
    capacity: int = 1,
    starts_in_hours: float = 72,
    earlier_today: bool = False,
    slot_minutes: int = 15,
    kind: str = "reception",
    **schedule_values: Any,
):
    """A schedule with one planned session of `slots` slots, bookable now (no rule expansion).

    `earlier_today` puts the start on today's local date, already past (see started_earlier_today),
    instead of `starts_in_hours` from now.
    """
    from receptions.schedules.models import ScheduledSession, Slot

    institution = institution or make_institution()
    zone = ZoneInfo(institution.district.region.timezone)
    if earlier_today:
        start = started_earlier_today(zone)
    else:
        start = (datetime.now(UTC) + timedelta(hours=starts_in_hours)).replace(
            second=0, microsecond=0
        )
        start = start.replace(minute=start.minute - start.minute % 15)
    end = start + timedelta(minutes=slot_minutes * slots)
    schedule = _new_schedule(
        institution,
        kind=kind,
        slot_minutes=slot_minutes,
        capacity=capacity,
        valid_from=start.date(),
        **schedule_values,
    )
    session = ScheduledSession(
        schedule=schedule,
        institution_id=institution.id,
        kind=kind,
        local_date=start.astimezone(zone).date(),
        starts_at=start,
        ends_at=end,
        status="planned",
        walk_in_places=0,
    )
    session.slots = [
        Slot(
            starts_at=start + timedelta(minutes=slot_minutes * i),
            ends_at=start + timedelta(minutes=slot_minutes * (i + 1)),
            capacity=capacity,
            booked=0,
        )
        for i in range(slots)
    ]
    db.session.add_all([schedule, session])
    db.session.commit()
    return session


def make_booking(
    slot,
    *,
    topic=None,
    name: str = "Айжан Тестова",
    status: str = "booked",
    email: str = "",
    **values: Any,
):
    """A booking stored directly (the public form is tested on its own), seat counter included."""
    from receptions.booking import identity
    from receptions.booking.models import Booking

    n = _n()
    topic = topic or make_topic()
    iin = make_iin(n)
    session = slot.session
    booking = Booking(
        slot_id=slot.id,
        session_id=session.id,
        schedule_id=session.schedule_id,
        institution_id=session.institution_id,
        reference=_reference(n),
        manage_token_hash=f"{n:064d}",
        idempotency_hash=f"key-{n}",
        citizen_name=name,
        iin_hash=identity.iin_hash(iin, "test-iin-hash-key-not-for-production"),
        iin_last4=iin[-4:],
        phone="+77015550101",
        email=email,
        locale="ru",
        topic_id=topic.id,
        question="Вопрос о ремонте крыши",
        consent_at=datetime.now(UTC),
        consent_version="test",
        month=slot.starts_at.strftime("%Y-%m"),
        status=status,
        **values,
    )
    slot.booked += 1 if status == "booked" else 0
    db.session.add(booking)
    db.session.commit()
    return booking


def make_notification(recipient: str, *, status: str = "pending", **values: Any):
    """An outbox message stored directly, as the notify service would have queued it."""
    from receptions.notify.models import Notification

    channel = "email" if "@" in recipient else "sms"
    # What a reminder shows: every message is written with StrictUndefined, so a payload without
    # these could not be sent (or sent again).
    payload = {
        "institution": {"kk": "Әкімдік", "ru": "Акимат", "en": "Akimat"},
        "starts_at": "2026-12-01T05:00:00+00:00",
        "location": "Кабинет 1",
        "reference": "TST-2345AB",
        "status_url": "http://localhost/status/TST-2345AB",
        "institution_url": "http://localhost/institutions/1",
    }
    defaults = dict(channel=channel, template="reminder", locale="ru", payload=payload, attempts=0)
    notification = Notification(recipient=recipient, status=status, **{**defaults, **values})
    db.session.add(notification)
    db.session.commit()
    return notification
