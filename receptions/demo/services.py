"""Load the demo data idempotently: rows are matched by their natural keys and updated in place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from typing import Any

from sqlalchemy import select

from ..auth.models import Role, User
from ..auth.services import hash_password
from ..booking.models import Topic
from ..database import write_transaction
from ..extensions import db
from ..geography.models import District, Region
from ..institutions.models import Institution
from . import data

DEMO_PASSWORD = "ashyq-demo-2026"  # noqa: S105 - documented in README for the demo accounts


@dataclass(frozen=True)
class DemoAccount:
    email: str
    full_name: str
    role: Role
    region: str | None = None
    district: tuple[str, str] | None = None
    institution_index: int | None = None


DEMO_ACCOUNTS = (
    DemoAccount("admin@example.kz", "Әсел Демоқызы", Role.admin),
    DemoAccount("region.atyrau@example.kz", "Ерлан Демоұлы", Role.region_officer, region="KZ-23"),
    DemoAccount(
        "district.atyrau@example.kz",
        "Гүлнар Демоқызы",
        Role.district_officer,
        district=("KZ-23", "atyrau"),
    ),
    DemoAccount("region.karaganda@example.kz", "Иван Демонов", Role.region_officer, region="KZ-35"),
    DemoAccount("head@example.kz", "Айгүл Демоқызы", Role.head, institution_index=0),
    DemoAccount("staff@example.kz", "Мария Демова", Role.staff, institution_index=0),
)


def _upsert(model: type[Any], key: dict[str, Any], values: dict[str, Any]) -> tuple[Any, bool]:
    row = db.session.scalars(select(model).filter_by(**key)).first()
    created = row is None
    if row is None:
        row = model(**key)
        db.session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    return row, created


def load_demo() -> dict[str, int]:
    """Create or refresh the demo data; returns how many rows of each kind were created."""
    created = {"regions": 0, "districts": 0, "institutions": 0, "users": 0}
    with write_transaction():
        regions: dict[str, Region] = {}
        for item in data.REGIONS:
            values = {
                k: item[k] for k in ("short", "kind", "name_kk", "name_ru", "name_en", "timezone")
            }
            region, new = _upsert(Region, {"code": item["code"]}, values)
            regions[item["code"]] = region
            created["regions"] += new
        db.session.flush()
        districts: dict[tuple[str, str], District] = {}
        for code, items in data.DISTRICTS.items():
            for item in items:
                values = {k: item[k] for k in ("name_kk", "name_ru", "name_en")}
                district, new = _upsert(
                    District, {"region_id": regions[code].id, "slug": item["slug"]}, values
                )
                districts[(code, item["slug"])] = district
                created["districts"] += new
        db.session.flush()
        institutions: list[Institution] = []
        for item in data.INSTITUTIONS:
            district = districts[(item["region"], item["district"])]
            values = {k: v for k, v in item.items() if k not in ("region", "district", "name_ru")}
            institution, new = _upsert(
                Institution, {"district_id": district.id, "name_ru": item["name_ru"]}, values
            )
            institutions.append(institution)
            created["institutions"] += new
        db.session.flush()
        for position, item in enumerate(data.TOPICS):
            values = {k: item[k] for k in ("name_kk", "name_ru", "name_en")}
            _upsert(Topic, {"slug": item["slug"]}, {**values, "position": position})
        password_hash = None
        for account in DEMO_ACCOUNTS:
            user = db.session.scalars(select(User).filter_by(email=account.email)).first()
            if user is None:
                password_hash = password_hash or hash_password(DEMO_PASSWORD)
                user = User(email=account.email, password_hash=password_hash)
                db.session.add(user)
                created["users"] += 1
            user.full_name = account.full_name
            user.role = account.role.value
            user.active = True
            user.region_id = regions[account.region].id if account.region else None
            user.district_id = districts[account.district].id if account.district else None
            user.institution_id = (
                institutions[account.institution_index].id
                if account.institution_index is not None
                else None
            )
    created["schedules"] = _load_demo_schedules()
    created["past sessions"] = _load_demo_history()
    return created


DEMO_UNIFIED_REGIONS = ("KZ-23", "KZ-15")  # Atyrau and Aktobe set a region-wide open-door day


def _load_demo_schedules() -> int:
    """A unified last-Friday open-door day in two regions, Tuesday receptions everywhere."""
    from ..schedules import services as schedules
    from ..schedules.models import Schedule

    admin = db.session.scalars(select(User).where(User.email == DEMO_ACCOUNTS[0].email)).one()
    today = date.today()
    open_door = {
        "rrule": "FREQ=MONTHLY;BYDAY=-1FR",
        "start_time": time(10),
        "end_time": time(13),
        "slot_minutes": 30,
        "capacity": 5,
        "walk_in_places": 10,
        "breaks": [],
        "day_off_policy": "previous_working_day",
        "valid_from": today.replace(day=1),
        "valid_until": None,
        "location_hint": "",
    }
    for code in DEMO_UNIFIED_REGIONS:
        region = db.session.scalars(select(Region).where(Region.code == code)).one()
        if schedules.unified_rule_for(region.id) is None:
            schedules.set_unified_rule(admin, region.id, open_door)
    created = 0
    institution_ids = db.session.scalars(select(Institution.id).order_by(Institution.id)).all()
    for index, institution_id in enumerate(institution_ids):
        has_reception = db.session.scalars(
            select(Schedule.id).where(
                Schedule.institution_id == institution_id, Schedule.kind == "reception"
            )
        ).first()
        if has_reception:
            continue
        institution = db.session.get(Institution, institution_id)
        weekday = ("TU", "WE", "TH")[index % 3]
        schedules.save_schedule(
            admin,
            institution_id,
            {
                "kind": "reception",
                "rrule": f"FREQ=WEEKLY;BYDAY={weekday}",
                "start_time": time(15),
                "end_time": time(18),
                "slot_minutes": 15,
                "capacity": 1,
                "walk_in_places": 0,
                "breaks": [["16:30", "16:45"]],
                "day_off_policy": "skip",
                "valid_from": today.replace(day=1),
                "valid_until": None,
                "host_name": institution.head_name,
                "host_position": "",  # the head's, in each reader's language
                "location": "",  # the institution's address, in each reader's language
                "exclusions": [],
                "booking_opens_days": 30,
                "booking_closes_hours": 2,
                "cancel_hours_before": 2,
            },
        )
        created += 1
    return created


# Questions citizens bring, each with its topic (slug), in the languages they are written in.
DEMO_QUESTIONS = (
    ("housing_utilities", "Подъездің шатыры ағады"),
    ("education", "Балабақшадан орын жоқ"),
    ("healthcare", "Очередь к узкому специалисту на два месяца"),
    ("roads_transport", "Мектепке апаратын жолды жөндеу керек"),
    ("social_support", "Оформление пособия на ребёнка"),
    ("housing_utilities", "Аулада түнде жарық жоқ"),
)


def _load_demo_history(months: int = 3) -> int:
    """Open-door days of the last months, on the days their schedules give, held (or cancelled)
    with walk-in visits and outcomes, for the reports. Idempotent: a schedule's month that has
    a past session already is left as it is."""
    import random
    from dataclasses import replace
    from datetime import UTC, timedelta

    from scheduling import plan_sessions

    from ..schedules.models import Schedule, ScheduledSession
    from ..schedules.services import local_today, spec_from, working_calendar
    from ..visits.models import Question, Visit

    topics = {topic.slug: topic for topic in db.session.scalars(select(Topic))}
    created = 0
    with write_transaction():
        schedules = db.session.scalars(
            select(Schedule).where(Schedule.kind == "open_door").order_by(Schedule.id)
        ).all()
        for schedule in schedules:
            tz = schedule.institution.district.region.timezone
            month_end = local_today(tz).replace(day=1) - timedelta(days=1)
            for _ in range(months):
                month_start = month_end.replace(day=1)
                month = (month_start, month_end)
                month_end = month_start - timedelta(days=1)
                if db.session.scalar(
                    select(ScheduledSession.id).where(
                        ScheduledSession.schedule_id == schedule.id,
                        ScheduledSession.local_date.between(*month),
                    )
                ):
                    continue
                # The rule as if it had been in force that month (valid_from is this month's).
                spec = replace(spec_from(schedule, tz), valid_from=month_start, valid_until=None)
                plans = plan_sessions(spec, *month, working_calendar([month_start.year]))
                if not plans:
                    continue
                plan = plans[0]
                # Seeded per schedule and month: the same history on every machine and every run.
                rng = random.Random(f"{schedule.id}:{month_start.isoformat()}")  # noqa: S311
                held = rng.random() > 0.15
                starts = plan.start.astimezone(UTC)
                session = ScheduledSession(
                    schedule_id=schedule.id,
                    institution_id=schedule.institution_id,
                    kind="open_door",
                    local_date=plan.date,
                    starts_at=starts,
                    ends_at=plan.end.astimezone(UTC),
                    status="held" if held else "cancelled",
                    cancel_reason=None if held else "Карантин",
                    closed_at=plan.end.astimezone(UTC) + timedelta(hours=1),
                    walk_in_places=10,
                    moved_from=plan.moved_from,
                )
                db.session.add(session)
                db.session.flush()
                visitors = rng.randrange(3, 12) if held else 0
                for n in range(visitors):
                    visit = Visit(
                        session_id=session.id,
                        institution_id=schedule.institution_id,
                        citizen_name=f"Демо Азамат {n + 1}",
                        received_by="head",
                        received_by_name=schedule.host_name,
                        at=starts + timedelta(minutes=15 * n),
                    )
                    db.session.add(visit)
                    db.session.flush()
                    outcome = rng.choices(["resolved", "explained", "pending"], [2, 5, 1.5])[0]
                    due = plan.date + timedelta(days=15) if outcome == "pending" else None
                    slug, summary = rng.choice(DEMO_QUESTIONS)
                    db.session.add(
                        Question(
                            visit_id=visit.id,
                            institution_id=schedule.institution_id,
                            topic_id=topics[slug].id,
                            summary=summary,
                            outcome=outcome,
                            responsible="Директордың орынбасары" if due else "",
                            due_date=due,
                            outcome_at=visit.at,
                            closed_at=None if due else visit.at,
                            created_at=visit.at,
                        )
                    )
                session.received_count = visitors
                created += 1
    return created
