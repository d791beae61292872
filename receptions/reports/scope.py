"""What a report covers (nation, region, district, institution type, institution) and who may see it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask_babel import format_number
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, and_, true

from .. import access
from ..auth.models import Role, User
from ..clock import now as clock_now
from ..errors import DomainError, Forbidden, NotInScope
from ..extensions import db
from ..geography.models import District, Region
from ..i18n import local_moment, month_label
from ..institutions.models import Institution, InstitutionType
from ..urls import whole_number

REPORT_ROLES = (Role.district_officer, Role.region_officer, Role.admin)
# Kazakhstan keeps one offset everywhere since 2024-03-01; months are cut in this zone.
REPORT_ZONE = ZoneInfo("Asia/Almaty")
# ASCII digits and nothing after the month: `\d` also matches "٢٠٢٦", and `$` matches before a
# final newline ("2026-10\n" then reached the reports and PostgreSQL's varchar(7)).
MONTH_RE = re.compile(r"\A([0-9]{4})-(0[1-9]|1[0-2])\Z")


# The rows a report of each level can be grouped by, its own children first (the default). A
# level above the scope is never offered: a district's figures grouped "by region" would be
# one row named after the whole region.
ROW_GROUPINGS: dict[str, tuple[str, ...]] = {
    "nation": ("region", "district", "institution", "institution_type"),
    "region": ("district", "institution", "institution_type"),
    "district": ("institution", "institution_type"),
    "institution": ("institution",),
}


class BadReportRequest(DomainError):
    status_code = 400


class BadPeriod(BadReportRequest):
    """A period the filters cannot give: the pages with the filter form show it again with the
    message at `field` (`month`, `from` or `to`); a download or chart link answers 400."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Scope:
    level: str  # nation | region | district | institution
    ident: int | None = None
    institution_type: str | None = None

    @property
    def key(self) -> str:
        base = self.level if self.ident is None else f"{self.level}:{self.ident}"
        return base + (f";type:{self.institution_type}" if self.institution_type else "")

    def condition(self) -> ColumnElement[bool]:
        """SQL condition on Institution joined with District."""
        parts: list[ColumnElement[bool]] = []
        if self.level == "region":
            parts.append(District.region_id == self.ident)
        elif self.level == "district":
            parts.append(Institution.district_id == self.ident)
        elif self.level == "institution":
            parts.append(Institution.id == self.ident)
        if self.institution_type:
            parts.append(Institution.type == self.institution_type)
        return and_(true(), *parts)

    def name(self) -> str:
        if self.level == "region":
            region = db.session.get(Region, self.ident)
            return region.name if region else ""
        if self.level == "district":
            district = db.session.get(District, self.ident)
            return district.name_with_region if district else ""
        if self.level == "institution":
            institution = db.session.get(Institution, self.ident)
            return institution.name if institution else ""
        return str(_l("Kazakhstan"))


def default_grouping(scope: Scope) -> str:
    """The rows a report of `scope` shows unless asked for others: its children."""
    return ROW_GROUPINGS[scope.level][0]


def parse_scope(text: str | None) -> Scope:
    """`nation`, `region:12`, `district:7`, `institution:3`, each optionally `;type:school`."""
    text = (text or "nation").strip()
    head, _, tail = text.partition(";")
    institution_type = None
    if tail:
        name, _, value = tail.partition(":")
        if name != "type" or value not in InstitutionType.__members__:
            raise BadReportRequest(str(_l("Unknown institution type in the scope.")))
        institution_type = value
    level, _, ident = head.partition(":")
    if level == "nation" and not ident:
        return Scope("nation", None, institution_type)
    number = whole_number(ident)
    if level in ("region", "district", "institution") and number is not None:
        return Scope(level, number, institution_type)
    raise BadReportRequest(str(_l("Unknown report scope.")))


def default_scope(user: User) -> Scope:
    role = user.role_enum
    if role is Role.region_officer:
        return Scope("region", user.region_id)
    if role is Role.district_officer:
        return Scope("district", user.district_id)
    return Scope("nation")


def authorise(user: User, scope: Scope) -> Scope:
    """The scope if it lies inside the user's own; 404 otherwise (nothing about others leaks)."""
    if user.role_enum not in REPORT_ROLES:
        raise Forbidden()
    if scope.level == "nation":
        if user.role_enum is not Role.admin:
            raise NotInScope()
    elif scope.level == "region":
        access.get_region_in_scope(user, scope.ident or 0)
        if user.role_enum is Role.district_officer:
            raise NotInScope()
    elif scope.level == "district":
        access.get_district_in_scope(user, scope.ident or 0)
    else:
        access.get_institution_in_scope(user, scope.ident or 0)
    return scope


def year_and_month(text: str) -> tuple[int, int] | None:
    """(year, month) of a YYYY-MM text, or None when it is not one: the one reading of a month
    that staff and akimats type or put in a URL."""
    match = MONTH_RE.match(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def report_today(at: datetime | None = None) -> date:
    """The local date that decides which months are over: months are cut in `REPORT_ZONE`."""
    return (at or clock_now()).astimezone(REPORT_ZONE).date()


def current_month(today: date) -> str:
    return today.strftime("%Y-%m")


def last_finished_month(today: date) -> str:
    """The month reports show unless asked for another: the current one is not over yet."""
    return previous_month(current_month(today))


def parse_month(text: str | None, *, today: date, field: str = "month") -> str:
    """A finished or current month as YYYY-MM, by default the last finished one; malformed or
    future months are refused (`BadPeriod`, naming `field`)."""
    if not text:
        return last_finished_month(today)
    parts = year_and_month(text)
    if parts is None or parts[0] < 2000:
        raise BadPeriod(str(_l("The month must look like 2026-11.")), field)
    if parts > (today.year, today.month):
        raise BadPeriod(str(_l("Reports cannot cover a month in the future.")), field)
    return text


MAX_MONTHS = 24


@dataclass(frozen=True)
class Period:
    """The months a report covers: `months` consecutive months from `first`."""

    first: str
    months: int = 1

    @property
    def last(self) -> str:
        month = self.first
        for _ in range(self.months - 1):
            month = next_month(month)
        return month

    @property
    def label(self) -> str:
        return self.first if self.months == 1 else f"{self.first} – {self.last}"

    @property
    def title(self) -> str:
        """The period in the reader's words, for headings: "2026 ж. қараша", "ноябрь 2026 г. –
        январь 2027 г."."""
        if self.months == 1:
            return month_label(self.first)
        return f"{month_label(self.first)} – {month_label(self.last)}"

    @property
    def end(self) -> datetime:
        """The moment the period is over: the start of the month after its last."""
        return month_start(next_month(self.last))

    def in_progress(self, at: datetime) -> bool:
        """Whether the period's last month is still running at `at` (the current month)."""
        return at < self.end

    def figures_up_to(self, at: datetime) -> str:
        """What a page or a download of an unfinished period says first: which month is not
        over and the moment its figures run up to, in the reader's language and local time."""
        return str(
            _l(
                "%(month)s is in progress: figures up to %(date)s, %(time)s.",
                month=month_label(self.last),
                date=local_moment(at, "d MMMM y", REPORT_ZONE.key),
                time=local_moment(at, "HH:mm", REPORT_ZONE.key),
            )
        )

    @property
    def args(self) -> dict[str, str]:
        """Query arguments that give this period back to `parse_period`."""
        if self.months == 1:
            return {"month": self.first}
        return {"from": self.first, "to": self.last}


def progress_terms(to_come: int) -> str:
    """How the figures of a period in progress are counted, said after `Period.figures_up_to`."""
    return str(
        _l(
            "Sessions that have not started yet are counted neither as planned nor as held "
            "(still to come: %(num)s); the change on the previous period is given once the "
            "month is over.",
            num=format_number(to_come),
        )
    )


def progress_notice(period: Period, at: datetime, to_come: int | None = None) -> list[str]:
    """What a page or a download says of a period in progress, a sentence a line: up to when
    its figures run and, where sessions are counted (`to_come` given), how; nothing for a
    finished period."""
    if not period.in_progress(at):
        return []
    notice = [period.figures_up_to(at)]
    if to_come is not None:
        notice.append(progress_terms(to_come))
    return notice


def parse_period(
    month: str | None, month_from: str | None, month_to: str | None, *, today: date
) -> Period:
    """One month (`month`) or a range (`from`..`to`, both finished or current months)."""
    if not month_from and not month_to:
        return Period(parse_month(month, today=today))
    if not month_from or not month_to:
        raise BadPeriod(
            str(_l("Give both the first and the last month of the range.")),
            "to" if month_from else "from",
        )
    first = parse_month(month_from, today=today, field="from")
    last = parse_month(month_to, today=today, field="to")
    if last < first:
        raise BadPeriod(str(_l("The range must not end before it starts.")), "to")
    months = 1
    while first != last and months <= MAX_MONTHS:
        first, months = next_month(first), months + 1
    if months > MAX_MONTHS:
        raise BadPeriod(str(_l("A report covers at most %(n)s months.", n=MAX_MONTHS)), "from")
    return Period(month_from, months)


def month_start(month: str) -> datetime:
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=REPORT_ZONE)


def next_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year + (number == 12)}-{number % 12 + 1:02d}"


def previous_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year - (number == 1)}-{(number - 2) % 12 + 1:02d}"
