"""Real processes race for the same seats: never past capacity, counters equal active bookings.

The same checker must catch a deliberately naive check-then-insert booking, which proves that it
would notice overbooking if the real code ever allowed it.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from receptions.booking.models import Booking
from receptions.extensions import db
from receptions.schedules.models import Slot
from tests.factories import make_open_session, make_topic

# Races real processes, which wait on the real clock: not for `make test-clock`.
pytestmark = pytest.mark.realtime

PROCESSES = 4
ATTEMPTS = 30
SLOTS = 6
CAPACITY = 2


def overbooking_report() -> list[str]:
    """Every way the seat counters and the bookings could disagree, as readable lines."""
    db.session.rollback()
    problems = []
    active = dict(
        db.session.execute(
            select(Booking.slot_id, func.count())
            .where(Booking.status == "booked")
            .group_by(Booking.slot_id)
        ).all()
    )
    for slot in db.session.scalars(select(Slot)):
        held = active.get(slot.id, 0)
        if held > slot.capacity:
            problems.append(f"slot {slot.id}: {held} bookings for {slot.capacity} seats")
        if slot.booked != held:
            problems.append(f"slot {slot.id}: counter {slot.booked} but {held} active bookings")
        if slot.booked > slot.capacity:
            problems.append(f"slot {slot.id}: counter {slot.booked} over capacity {slot.capacity}")
    return problems


def _racer(database_url, slot_ids, topic_id, naive, worker, barrier, queue):  # type: ignore[no-untyped-def]
    from receptions import create_app
    from receptions.booking import services
    from tests.conftest import app_settings
    from tests.factories import make_iin

    app = create_app(app_settings(database_url))
    outcome: Counter[str] = Counter()
    rng = random.Random(worker)
    with app.test_request_context():
        barrier.wait(timeout=60)
        for attempt in range(ATTEMPTS):
            slot_id = rng.choice(slot_ids)
            iin = make_iin(worker * 1000 + attempt + 1)
            if naive:
                _tally(
                    outcome, "booked", _naive_book, slot_id, iin, topic_id, f"{worker}-{attempt}"
                )
            else:
                request = _request(slot_id, iin, topic_id)
                _tally(outcome, "booked", services.book_slot, request)
    queue.put(dict(outcome))


def _tally(outcome, name, act, *args) -> None:  # type: ignore[no-untyped-def]
    """One attempt, counted by how it ended; errors go to the parent, which fails the test."""
    from receptions.booking import services

    try:
        act(*args)
        outcome[name] += 1
    except services.BookingLimitReached:
        outcome["limit"] += 1
    except services.SlotUnavailable:
        outcome["full"] += 1
    except Exception as error:
        outcome[f"error: {type(error).__name__}: {error}"[:200]] += 1
    db.session.remove()


def _request(slot_id, iin, topic_id):  # type: ignore[no-untyped-def]
    """A submission of a fresh booking form (with a key the service issued)."""
    from receptions.booking import services

    return services.BookingRequest(
        slot_id=slot_id,
        idempotency_key=services.new_idempotency_key(),
        citizen_name="Тест Жарыс",
        iin=iin,
        phone="+77015550000",
        email="",
        locale="kk",
        topic_id=topic_id,
        question="Жарыс сынағы",
        accessibility=[],
        accessibility_note="",
    )


def _naive_book(slot_id, iin, topic_id, key):  # type: ignore[no-untyped-def]
    """Check, then write in a second transaction: the classic lost update."""
    from datetime import UTC, datetime

    from receptions.booking import identity, services
    from receptions.database import write_transaction

    slot = db.session.get(Slot, slot_id)
    seen, capacity, session = slot.booked, slot.capacity, slot.session
    db.session.rollback()
    if seen >= capacity:
        raise services.SlotUnavailable()
    time.sleep(0.01)  # the window in which another process does the same
    with write_transaction():
        db.session.add(
            Booking(
                slot_id=slot_id,
                session_id=session.id,
                schedule_id=session.schedule_id,
                institution_id=session.institution_id,
                reference=f"NV-{key}"[:12],
                manage_token_hash=f"naive-{key}".ljust(64, "0"),
                idempotency_hash=f"naive-{key}",
                citizen_name="Naive",
                iin_hash=identity.iin_hash(iin, "k"),
                iin_last4=iin[-4:],
                phone="+77015550000",
                topic_id=topic_id,
                question="naive",
                consent_at=datetime.now(UTC),
                consent_version="test",
                month="2026-01",
            )
        )
        db.session.execute(
            Slot.__table__.update().where(Slot.id == slot_id).values(booked=seen + 1)
        )


def _run(target, args) -> list[dict[str, int]]:  # type: ignore[no-untyped-def]
    """PROCESSES real processes run `target(*args, worker, barrier, queue)`; their outcomes."""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(PROCESSES), context.Queue()
    processes = [
        context.Process(target=target, args=(*args, n, barrier, queue)) for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    return results


def _race(db_url: str, *, naive: bool) -> list[dict[str, int]]:
    session = make_open_session(slots=SLOTS, capacity=CAPACITY)
    topic = make_topic()
    slot_ids = [slot.id for slot in session.slots]
    return _run(_racer, (db_url, slot_ids, topic.id, naive))


def test_processes_racing_for_seats_never_overbook(app, db_url):
    results = _race(db_url, naive=False)
    errors = [key for result in results for key in result if key.startswith("error")]
    assert errors == []
    booked = sum(result.get("booked", 0) for result in results)
    assert overbooking_report() == []
    assert booked == db.session.scalar(select(func.count()).select_from(Booking))
    assert booked == SLOTS * CAPACITY  # far more attempts than seats: every seat was taken
    assert sum(r.get("full", 0) for r in results) == PROCESSES * ATTEMPTS - booked


@pytest.mark.parametrize("rounds", [3])
def test_the_checker_catches_a_naive_check_then_insert(app, db_url, rounds):
    found = []
    for _ in range(rounds):  # a race is probabilistic: a few rounds make it certain in practice
        _race(db_url, naive=True)
        found = overbooking_report()
        if found:
            break
    assert found, "the naive variant never overbooked, so the checker proved nothing"


# --- one citizen in every process ------------------------------------------------------------------

ROUNDS = 8


def _citizen_racer(database_url, rounds, unlocked, worker, barrier, queue):  # type: ignore[no-untyped-def]
    """Round after round, every process acts for the same citizen at the same moment: books a
    time (("book", slot_id, iin, topic_id)) or moves a booking (("move", token, slot_id))."""
    from receptions import create_app
    from receptions.booking import services
    from tests.conftest import app_settings

    app = create_app(app_settings(database_url))
    if unlocked:  # the bug the proof below must see: no per-citizen lock at all
        services._citizen_lock = lambda iin_hash: None
        services._submission_read = lambda dialect: services._BOOKABLE_FOR_TOPIC
    outcome: Counter[str] = Counter()
    with app.test_request_context():
        for actions in rounds:
            action = actions[worker]
            barrier.wait(timeout=60)
            if action[0] == "move":
                _tally(outcome, "move", services.reschedule, action[1], action[2])
            else:
                request = _request(action[1], action[2], action[3])
                _tally(outcome, "book", services.book_slot, request)
    queue.put(dict(outcome))


def _same_month(slots, timezone: str) -> list[int]:
    """The slots in the first one's local month (a session may straddle a month's last midnight)."""
    from receptions.booking.services import local_month

    month = local_month(slots[0].starts_at, timezone)
    return [slot.id for slot in slots if local_month(slot.starts_at, timezone) == month]


def _active_per_citizen(month: str | None = None) -> Counter[str]:
    db.session.rollback()
    query = select(Booking.iin_hash).where(Booking.status == "booked")
    if month is not None:
        query = query.where(Booking.month == month)
    return Counter(db.session.scalars(query))


def _one_citizen_books_everywhere(db_url: str, *, unlocked: bool = False):  # type: ignore[no-untyped-def]
    from tests.factories import make_iin

    # Seats are never the limit: one winner a round, so no slot can hold more than ROUNDS.
    session = make_open_session(slots=SLOTS, capacity=ROUNDS)
    topic = make_topic()
    slot_ids = _same_month(session.slots, session.institution.district.region.timezone)
    rounds = [
        [
            ("book", slot_ids[(number + worker) % len(slot_ids)], make_iin(700 + number), topic.id)
            for worker in range(PROCESSES)
        ]
        for number in range(ROUNDS)
    ]
    return _run(_citizen_racer, (db_url, rounds, unlocked))


def test_one_citizen_booking_from_every_process_at_once_gets_one_booking(app, db_url):
    results = _one_citizen_books_everywhere(db_url)
    assert [key for result in results for key in result if key.startswith("error")] == []
    assert sorted(_active_per_citizen().values()) == [1] * ROUNDS
    assert sum(r.get("book", 0) for r in results) == ROUNDS
    assert sum(r.get("limit", 0) for r in results) == (PROCESSES - 1) * ROUNDS
    assert overbooking_report() == []


def test_without_the_citizen_lock_postgresql_lets_one_citizen_book_twice(postgresql_url):
    """The race above really races the lock: take it away and PostgreSQL double-books."""
    from receptions import create_app
    from tests.conftest import app_settings, empty_all_tables

    app = create_app(app_settings(postgresql_url))
    with app.app_context():
        empty_all_tables()
        db.session.commit()
        _one_citizen_books_everywhere(postgresql_url, unlocked=True)
        twice = [n for n in _active_per_citizen().values() if n > 1]
        empty_all_tables()
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    assert twice, "no citizen got two bookings without the lock, so the race proved nothing"


def test_moving_into_a_month_while_booking_there_leaves_one_booking_in_it(app, db_url):
    """Each round one process moves the citizen's booking into next month while the others
    book next month for the same citizen: exactly one of them wins."""
    from receptions.booking import services
    from tests.factories import make_iin
    from tests.integration.test_booking import add_session

    first = make_open_session(slots=SLOTS, capacity=PROCESSES, booking_opens_days=40)
    later = add_session(first, hours_later=31 * 24, slots=SLOTS)  # always another month
    timezone = first.institution.district.region.timezone
    topic = make_topic()
    here, there = _same_month(first.slots, timezone), _same_month(later.slots, timezone)
    rounds = []
    for number in range(ROUNDS):
        iin = make_iin(800 + number)
        with app.test_request_context():
            token = services.book_slot(
                _request(here[number % len(here)], iin, topic.id)
            ).token
        slot_ids = [there[(number + worker) % len(there)] for worker in range(PROCESSES)]
        rounds.append(
            [("move", token, slot_ids[0])]
            + [("book", slot_id, iin, topic.id) for slot_id in slot_ids[1:]]
        )
    results = _run(_citizen_racer, (db_url, rounds, False))
    assert [key for result in results for key in result if key.startswith("error")] == []
    month = services.local_month(later.slots[0].starts_at, timezone)
    assert sorted(_active_per_citizen(month).values()) == [1] * ROUNDS
    won = sum(r.get("move", 0) + r.get("book", 0) for r in results)
    assert won == ROUNDS
    assert overbooking_report() == []
