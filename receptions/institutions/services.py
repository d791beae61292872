"""Finding, creating and editing institutions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import joinedload

from .. import access
from ..audit.services import record as audit
from ..auth.models import User
from ..database import write_transaction
from ..errors import Forbidden
from ..extensions import db
from ..geography.models import District, Region
from ..schedules.services import follow_region_rule
from .models import Institution, InstitutionType, search_key

EDITABLE_FIELDS = (
    "type",
    "name_kk",
    "name_ru",
    "name_en",
    "address_kk",
    "address_ru",
    "head_name",
    "head_position_kk",
    "head_position_ru",
    "head_position_en",
    "accessibility_kk",
    "accessibility_ru",
    "accessibility_en",
    "phone",
    "email",
    "active",
)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(query: Select[Any], page: int, per_page: int) -> Page:
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    page = max(1, page)
    items = list(db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)))
    return Page(items=items, total=total or 0, page=page, per_page=per_page)


def search_institutions(
    *,
    text: str = "",
    type_: str | None = None,
    region_id: int | None = None,
    district_id: int | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """Active institutions matching a name fragment and filters, ordered by name."""
    query = (
        select(Institution)
        .join(Institution.district)
        .options(joinedload(Institution.district).joinedload(District.region))
        .where(Institution.active.is_(True))
    )
    for word in search_key(text).split()[:8]:  # every word, in any order
        query = query.where(Institution.search_text.contains(word, autoescape=True))
    if type_:
        query = query.where(Institution.type == InstitutionType(type_).value)
    if region_id:
        query = query.where(District.region_id == region_id)
    if district_id:
        query = query.where(Institution.district_id == district_id)
    return paginate(query.order_by(Institution.name_ru, Institution.id), page, per_page)


def regions_with_counts() -> list[tuple[Region, int]]:
    rows = db.session.execute(
        select(Region, func.count(Institution.id))
        .outerjoin(Region.districts)
        .outerjoin(
            Institution,
            (Institution.district_id == District.id) & Institution.active.is_(True),
        )
        .group_by(Region.id)
        .order_by(Region.kind.desc(), Region.name_ru)
    ).all()
    return [(region, count) for region, count in rows]


def _require_manager(actor: User) -> None:
    if actor.role_enum not in access.OFFICERS:
        raise Forbidden()


def create_institution(actor: User, district_id: int, values: dict[str, Any]) -> Institution:
    _require_manager(actor)
    access.get_district_in_scope(actor, district_id)
    with write_transaction():
        institution = Institution(district_id=district_id)
        for field in EDITABLE_FIELDS:
            if field in values:
                setattr(institution, field, values[field])
        db.session.add(institution)
        db.session.flush()
        follow_region_rule(institution)
        audit("institution.created", "institution", institution.id)
    return institution


def update_institution(
    actor: User, institution_id: int, district_id: int, values: dict[str, Any]
) -> Institution:
    _require_manager(actor)
    access.get_institution_in_scope(actor, institution_id)
    access.get_district_in_scope(actor, district_id)
    with write_transaction():
        institution = access.get_institution_in_scope(actor, institution_id)
        changed = [
            f for f in EDITABLE_FIELDS if f in values and getattr(institution, f) != values[f]
        ]
        for field in changed:
            setattr(institution, field, values[field])
        if institution.district_id != district_id:
            institution.district_id = district_id
            changed.append("district_id")
        if {"active", "district_id"} & set(changed):
            db.session.flush()
            db.session.refresh(institution, ["district"])
            follow_region_rule(institution)
        audit("institution.updated", "institution", institution.id, fields=changed)
    return institution
