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


def _racer(database_url, slot_ids, topic_id, worker, barrier, queue, naive):  # type: ignore[no-untyped-def]
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
            try:
                if naive:
                    _naive_book(slot_id, iin, topic_id, f"{worker}-{attempt}")
                else:
                    services.book_slot(
                        services.BookingRequest(
                            slot_id=slot_id,
                            idempotency_key=f"race-{worker}-{attempt}-{'x' * 12}",
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
                    )
                outcome["booked"] += 1
            except services.SlotUnavailable:
                outcome["full"] += 1
            except Exception as error:  # reported to the parent, which fails the test
                outcome[f"error: {type(error).__name__}: {error}"[:200]] += 1
            db.session.remove()
    queue.put(dict(outcome))


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
                idempotency_key=f"naive-{key}",
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


def _race(db_url: str, *, naive: bool) -> list[dict[str, int]]:
    session = make_open_session(slots=SLOTS, capacity=CAPACITY)
    topic = make_topic()
    slot_ids = [slot.id for slot in session.slots]
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(PROCESSES), context.Queue()
    processes = [
        context.Process(target=_racer, args=(db_url, slot_ids, topic.id, n, barrier, queue, naive))
        for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    return results


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
